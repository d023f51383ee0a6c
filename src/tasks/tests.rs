//! The update rules of tasks (`If-Match`, who may write, what counts as a change, which fields
//! belong to the server), on a SQLite file with no Redis and no server.

use poem_openapi::types::MaybeUndefined;

use crate::audit::store::AuditFilter;
use crate::auth::Principal;
use crate::domain::testing::TestDomain;
use crate::error::AppError;
use crate::etag;
use crate::projects::model::ProjectRole;
use crate::tasks::model::{Priority, Task, TaskStatus};
use crate::tasks::requests::UpdateTaskRequest;
use crate::tasks::service::{self, NewTask, TaskChanges};

struct Board {
    domain: TestDomain,
    owner: Principal,
    viewer: Principal,
    outsider: Principal,
    task: Task,
}

async fn board() -> Board {
    let domain = TestDomain::new().await;
    let ctx = &domain.ctx;
    let owner = domain.user("owner").await;
    let viewer = domain.user("viewer").await;
    let outsider = domain.user("outsider").await;
    let project = crate::projects::service::create(ctx, &owner, "P".into(), String::new(), None)
        .await
        .unwrap();
    crate::projects::service::put_member(
        ctx,
        &owner,
        project.id,
        viewer.user_id,
        ProjectRole::Viewer,
    )
    .await
    .unwrap();
    let new = NewTask {
        title: "Write the README".into(),
        description: String::new(),
        status: TaskStatus::Todo,
        priority: Priority::Medium,
        assignee_id: None,
        due_at: None,
        tags: vec!["docs".into()],
    };
    let task = service::create(ctx, &owner, project.id, new, None)
        .await
        .unwrap();
    Board {
        domain,
        owner,
        viewer,
        outsider,
        task,
    }
}

fn retitle(title: &str) -> TaskChanges {
    TaskChanges {
        title: Some(title.to_owned()),
        ..TaskChanges::default()
    }
}

async fn audit_entries(board: &Board) -> usize {
    let mut store = board.domain.ctx.read().await.unwrap();
    let filter = AuditFilter {
        entity_type: Some("task".into()),
        ..AuditFilter::default()
    };
    store.list_audit(&filter, None, 100).await.unwrap().len()
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_changes_nothing() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let id = b.task.id;
    let v1 = etag::for_version(1);
    let updated = service::update(ctx, &b.owner, id, Some(&v1), retitle("Second"))
        .await
        .unwrap();
    assert_eq!(updated.version, 2);

    let err = service::update(ctx, &b.owner, id, Some(&v1), retitle("Third"))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::PreconditionFailed), "{err:?}");
    let err = service::delete(ctx, &b.owner, id, Some(&v1))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::PreconditionFailed), "{err:?}");
    let now = service::get(ctx, &b.owner, id).await.unwrap();
    assert_eq!((now.title.as_str(), now.version), ("Second", 2));

    let v2 = etag::for_version(2);
    service::delete(ctx, &b.owner, id, Some(&v2)).await.unwrap();
    let err = service::get(ctx, &b.owner, id).await.unwrap_err();
    assert!(matches!(err, AppError::NotFound("task")), "{err:?}");
}

#[tokio::test]
async fn viewers_read_but_cannot_write_and_outsiders_see_nothing() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let id = b.task.id;
    assert_eq!(service::get(ctx, &b.viewer, id).await.unwrap().version, 1);
    let err = service::update(ctx, &b.viewer, id, None, retitle("No"))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    for err in [
        service::get(ctx, &b.outsider, id).await.unwrap_err(),
        service::update(ctx, &b.outsider, id, None, retitle("No"))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, AppError::NotFound("task")), "{err:?}");
    }
    assert_eq!(
        service::get(ctx, &b.owner, id).await.unwrap().title,
        "Write the README"
    );
}

#[tokio::test]
async fn setting_a_field_to_its_value_is_no_change() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let before = audit_entries(&b).await;
    let same = TaskChanges {
        title: Some(b.task.title.clone()),
        status: Some(TaskStatus::Todo),
        tags: Some(vec!["docs".into()]),
        assignee_id: MaybeUndefined::Null,
        ..TaskChanges::default()
    };
    let task = service::update(ctx, &b.owner, b.task.id, None, same)
        .await
        .unwrap();
    assert_eq!(task.version, 1);
    assert_eq!(task.updated_at, b.task.updated_at);
    assert_eq!(audit_entries(&b).await, before);

    let changed = TaskChanges {
        priority: Some(Priority::Urgent),
        tags: Some(vec!["b".into(), "a".into()]),
        ..TaskChanges::default()
    };
    let task = service::update(ctx, &b.owner, b.task.id, None, changed)
        .await
        .unwrap();
    assert_eq!((task.version, task.priority), (2, Priority::Urgent));
    assert_eq!(task.tags, ["a", "b"]);
    assert_eq!(audit_entries(&b).await, before + 1);
}

#[tokio::test]
async fn the_server_owns_ids_authorship_times_and_versions() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let task = service::update(ctx, &b.owner, b.task.id, None, retitle("New"))
        .await
        .unwrap();
    assert_eq!(
        (task.id, task.project_id, task.created_by, task.created_at),
        (
            b.task.id,
            b.task.project_id,
            b.task.created_by,
            b.task.created_at
        )
    );
    assert_eq!(task.version, b.task.version + 1);
    assert!(task.updated_at > b.task.updated_at);

    // A body that names a server-owned field is refused naming it, before any rule runs.
    for field in ["version", "id", "created_by", "updated_at"] {
        let body = format!(r#"{{"title":"x","{field}":1}}"#);
        let Err(err) = crate::http::body::parse::<UpdateTaskRequest>(body.as_bytes()) else {
            panic!("{field}: a body naming it parsed");
        };
        match err {
            AppError::Validation(fields) => {
                assert!(fields[0].message.contains(field), "{field}: {fields:?}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_assignee_must_be_a_member_of_the_project() {
    let b = board().await;
    let ctx = &b.domain.ctx;
    let changes = TaskChanges {
        assignee_id: MaybeUndefined::Value(b.outsider.user_id),
        ..TaskChanges::default()
    };
    let err = service::update(ctx, &b.owner, b.task.id, None, changes)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Validation(f) if f[0].field == "assignee_id"),
        "{err:?}"
    );
    let changes = TaskChanges {
        assignee_id: MaybeUndefined::Value(b.viewer.user_id),
        ..TaskChanges::default()
    };
    let task = service::update(ctx, &b.owner, b.task.id, None, changes)
        .await
        .unwrap();
    assert_eq!(task.assignee_id, Some(b.viewer.user_id));
}

#[test]
fn a_relevance_cursor_carries_the_exact_score() {
    use crate::tasks::store::{SortKey, SortValue};
    // Scores whose shortest decimal serde_json's default float parsing may not read back
    // exactly; a cursor must, or a page boundary would repeat or skip a row.
    let fingerprint = crate::paging::fingerprint(&["relevance"]);
    for score in [
        -1.0000000000000002e-6,
        0.1 + 0.2,
        -2.0553359683794467e-6,
        f64::MIN_POSITIVE,
        -0.0,
        -123.456_789_012_345_68,
    ] {
        let key = SortKey {
            value: SortValue::Score(score),
            id: uuid::Uuid::now_v7(),
        };
        let cursor = crate::paging::encode(&fingerprint, &key);
        let back: SortKey = crate::paging::decode(&fingerprint, &cursor).unwrap();
        match back.value {
            SortValue::Score(read) => assert_eq!(read.to_bits(), score.to_bits(), "{score:e}"),
            other => panic!("{score:e} read back as {other:?}"),
        }
    }
}
