//! The rules of comments on a SQLite file with no Redis and no server: a demoted author loses
//! the right to edit and delete, an owner deletes but does not edit, and the task's count and
//! version follow additions and deletions only.

use crate::auth::Principal;
use crate::comments::service;
use crate::domain::testing::TestDomain;
use crate::error::AppError;
use crate::projects::model::ProjectRole;
use crate::tasks::model::{Priority, TaskStatus};
use crate::tasks::service::NewTask;

struct Board {
    domain: TestDomain,
    owner: Principal,
    author: Principal,
    project_id: uuid::Uuid,
    task_id: uuid::Uuid,
}

async fn board() -> Board {
    let domain = TestDomain::new().await;
    let ctx = &domain.ctx;
    let owner = domain.user("owner").await;
    let author = domain.user("author").await;
    let project = crate::projects::service::create(ctx, &owner, "P".into(), String::new(), None)
        .await
        .unwrap();
    crate::projects::service::put_member(
        ctx,
        &owner,
        project.id,
        author.user_id,
        ProjectRole::Member,
    )
    .await
    .unwrap();
    let new = NewTask {
        title: "Discuss".into(),
        description: String::new(),
        status: TaskStatus::Todo,
        priority: Priority::Medium,
        assignee_id: None,
        due_at: None,
        tags: Vec::new(),
    };
    let task = crate::tasks::service::create(ctx, &owner, project.id, new, None)
        .await
        .unwrap();
    Board {
        domain,
        owner,
        author,
        project_id: project.id,
        task_id: task.id,
    }
}

#[tokio::test]
async fn an_author_demoted_to_viewer_can_read_but_no_longer_edit_or_delete() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let c = service::create(ctx, &b.author, b.task_id, "mine".into())
        .await
        .unwrap();
    crate::projects::service::put_member(
        ctx,
        &b.owner,
        b.project_id,
        b.author.user_id,
        ProjectRole::Viewer,
    )
    .await
    .unwrap();
    assert_eq!(
        service::get(ctx, &b.author, c.id).await.unwrap().body,
        "mine"
    );
    for err in [
        service::update(ctx, &b.author, c.id, None, "edited".into())
            .await
            .unwrap_err(),
        service::delete(ctx, &b.author, c.id, None)
            .await
            .unwrap_err(),
        service::create(ctx, &b.author, b.task_id, "more".into())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    }
}

#[tokio::test]
async fn an_owner_deletes_but_does_not_edit_someone_elses_comment() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let c = service::create(ctx, &b.author, b.task_id, "theirs".into())
        .await
        .unwrap();
    let err = service::update(ctx, &b.owner, c.id, None, "mine now".into())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    service::delete(ctx, &b.owner, c.id, None).await.unwrap();
    let err = service::get(ctx, &b.owner, c.id).await.unwrap_err();
    assert!(matches!(err, AppError::NotFound("comment")), "{err:?}");
}

#[tokio::test]
async fn the_task_count_and_version_follow_additions_and_deletions_only() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let task = |_moment: &'static str| crate::tasks::service::get(ctx, &b.owner, b.task_id);
    let start = task("start").await.unwrap();
    assert_eq!((start.comment_count, start.version), (0, 1));
    let one = service::create(ctx, &b.author, b.task_id, "one".into())
        .await
        .unwrap();
    service::create(ctx, &b.owner, b.task_id, "two".into())
        .await
        .unwrap();
    let two = task("two").await.unwrap();
    assert_eq!((two.comment_count, two.version), (2, 3));
    let edited = service::update(ctx, &b.author, one.id, None, "one, edited".into())
        .await
        .unwrap();
    assert_eq!(edited.version, 2);
    assert_eq!(task("edited").await.unwrap().version, 3);
    service::delete(ctx, &b.author, one.id, None).await.unwrap();
    let last = task("deleted").await.unwrap();
    assert_eq!((last.comment_count, last.version), (1, 4));
}
