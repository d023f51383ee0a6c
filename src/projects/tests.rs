//! The role rules of projects, on a SQLite file with no Redis and no server.

use crate::auth::Principal;
use crate::domain::testing::TestDomain;
use crate::error::AppError;
use crate::projects::model::ProjectRole;
use crate::projects::service;

/// A project owned by `owner`, with `member` and `viewer` added by the owner.
async fn team(domain: &TestDomain) -> (uuid::Uuid, [Principal; 4]) {
    let ctx = &domain.ctx;
    let [owner, member, viewer, outsider] = [
        domain.user("owner").await,
        domain.user("member").await,
        domain.user("viewer").await,
        domain.user("outsider").await,
    ];
    let project = service::create(ctx, &owner, "Launch".into(), String::new(), None)
        .await
        .unwrap();
    for (who, role) in [
        (&member, ProjectRole::Member),
        (&viewer, ProjectRole::Viewer),
    ] {
        service::put_member(ctx, &owner, project.id, who.user_id, role)
            .await
            .unwrap();
    }
    (project.id, [owner, member, viewer, outsider])
}

#[tokio::test]
async fn only_owners_change_a_project_and_outsiders_cannot_tell_it_exists() {
    let domain = TestDomain::new().await;
    let ctx = &domain.ctx;
    let (id, [owner, member, viewer, outsider]) = team(&domain).await;
    for who in [&member, &viewer] {
        let err = service::update(ctx, who, id, Some("Renamed".into()), None)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
        let err = service::delete(ctx, who, id).await.unwrap_err();
        assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    }
    let err = service::update(ctx, &outsider, id, Some("Renamed".into()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound("project")), "{err:?}");
    let err = service::get(ctx, &outsider, id).await.unwrap_err();
    assert!(matches!(err, AppError::NotFound("project")), "{err:?}");
    assert_eq!(service::get(ctx, &member, id).await.unwrap().name, "Launch");

    let renamed = service::update(ctx, &owner, id, Some("Renamed".into()), None)
        .await
        .unwrap();
    assert_eq!(renamed.name, "Renamed");
    // Every member reads the new name at once: the write invalidated the cached project.
    assert_eq!(
        service::get(ctx, &viewer, id).await.unwrap().name,
        "Renamed"
    );
}

#[tokio::test]
async fn members_cannot_manage_members_but_may_leave() {
    let domain = TestDomain::new().await;
    let ctx = &domain.ctx;
    let (id, [owner, member, viewer, outsider]) = team(&domain).await;
    let err = service::put_member(ctx, &member, id, outsider.user_id, ProjectRole::Viewer)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    let err = service::remove_member(ctx, &member, id, viewer.user_id)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");

    service::remove_member(ctx, &member, id, member.user_id)
        .await
        .unwrap();
    // The removal reached the cached role: the former member is now an outsider.
    let err = service::get(ctx, &member, id).await.unwrap_err();
    assert!(matches!(err, AppError::NotFound("project")), "{err:?}");
    let role = service::cached_role(ctx, id, owner.user_id, None).await;
    assert_eq!(role.unwrap(), ProjectRole::Owner);
}

#[tokio::test]
async fn a_project_keeps_at_least_one_owner() {
    let domain = TestDomain::new().await;
    let ctx = &domain.ctx;
    let (id, [owner, member, ..]) = team(&domain).await;
    let err = service::put_member(ctx, &owner, id, owner.user_id, ProjectRole::Member)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
    let err = service::remove_member(ctx, &owner, id, owner.user_id)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");

    service::put_member(ctx, &owner, id, member.user_id, ProjectRole::Owner)
        .await
        .unwrap();
    let demoted = service::put_member(ctx, &member, id, owner.user_id, ProjectRole::Viewer)
        .await
        .unwrap();
    assert_eq!(demoted.role, ProjectRole::Viewer);
    let err = service::update(ctx, &owner, id, Some("x".into()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
}
