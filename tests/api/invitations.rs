//! Invitations by email: who may invite, list, revoke, accept and decline (the authorization
//! matrix), invitations that wait for an account and its verification, expiry, conflicts, no
//! user enumeration, audit, and acceptance seen at once by another instance.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, Team, TestApp, TestUser, body, header, invalid, problem, spawn_app, spawn_app_with,
    str_of, unique_email,
};

/// Marks the user's address verified, as `tasklight verify-email` does.
pub async fn verify(app: &TestApp, email: &str) {
    tasklight::verification::service::mark_verified(&app.server.state.domain, email)
        .await
        .expect("mark_verified");
}

/// A team plus a user who was a member and was removed.
async fn team_and_removed(app: &TestApp) -> (Team, TestUser) {
    let team = app.team().await;
    let removed = app.user().await;
    app.add_member(&team.owner.access, &team.project_id, &removed.id, "member")
        .await;
    let path = format!("/projects/{}/members/{}", team.project_id, removed.id);
    body(app.delete(&path, Some(&team.owner.access)).await, 204).await;
    (team, removed)
}

async fn invite(
    app: &TestApp,
    token: Option<&str>,
    project_id: &str,
    email: &str,
    role: &str,
) -> reqwest::Response {
    app.post(
        &format!("/projects/{project_id}/invitations"),
        token,
        &json!({"email": email, "role": role}),
    )
    .await
}

/// Invites `email` as the owner; returns the Invitation body.
async fn invited(app: &TestApp, owner: &str, project_id: &str, email: &str, role: &str) -> Value {
    body(invite(app, Some(owner), project_id, email, role).await, 201).await
}

/// The invitee's answer to accept invitation `id`.
async fn accept(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.post(
        &format!("/invitations/{id}/accept"),
        Some(token),
        &json!({}),
    )
    .await
}

/// The invitation can no longer be accepted (404), and the project stays invisible (404).
async fn assert_still_outside(app: &TestApp, id: &str, token: &str, project_id: &str) {
    problem(accept(app, id, token).await, 404).await;
    problem(
        app.get(&format!("/projects/{project_id}"), Some(token))
            .await,
        404,
    )
    .await;
}

fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| str_of(i, "id"))
        .collect()
}

async fn my_invitations(app: &TestApp, token: &str) -> Vec<String> {
    ids_of(&body(app.get("/users/me/invitations", Some(token)).await, 200).await)
}

async fn audit_actions(app: &TestApp, owner: &str, project_id: &str) -> Vec<String> {
    let audit = body(
        app.get(
            &format!("/projects/{project_id}/audit?limit=100"),
            Some(owner),
        )
        .await,
        200,
    )
    .await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "action"))
        .collect()
}

#[tokio::test]
async fn only_the_owner_may_invite_list_and_revoke() {
    let app = spawn_app().await;
    let (team, removed) = team_and_removed(&app).await;
    let pid = team.project_id.clone();
    let email = unique_email();
    // Invite: owner 201; member and viewer 403; outsider and removed member 404; anonymous 401.
    for (who, token, status) in [
        ("member", Some(team.member.access.as_str()), 403),
        ("viewer", Some(team.viewer.access.as_str()), 403),
        ("outsider", Some(team.outsider.access.as_str()), 404),
        ("removed", Some(removed.access.as_str()), 404),
        ("anonymous", None, 401),
    ] {
        let resp = invite(&app, token, &pid, &email, "member").await;
        assert_eq!(resp.status(), status, "{who} inviting");
        problem(resp, status).await;
    }
    let invitation = invited(&app, &team.owner.access, &pid, &email, "member").await;
    assert_eq!(invitation["email"], email.as_str());
    assert_eq!(invitation["role"], "member");
    assert_eq!(invitation["project_id"], pid.as_str());
    assert_eq!(invitation["project_name"], "Team project");
    assert_eq!(invitation["invited_by"], team.owner.id.as_str());
    let id = str_of(&invitation, "id");

    // List: the same matrix.
    let list = format!("/projects/{pid}/invitations");
    let page = body(app.get(&list, Some(&team.owner.access)).await, 200).await;
    assert_eq!(ids_of(&page), vec![id.clone()]);
    for (who, token, status) in [
        ("member", Some(team.member.access.as_str()), 403),
        ("viewer", Some(team.viewer.access.as_str()), 403),
        ("outsider", Some(team.outsider.access.as_str()), 404),
        ("removed", Some(removed.access.as_str()), 404),
        ("anonymous", None, 401),
    ] {
        let resp = app.get(&list, token).await;
        assert_eq!(resp.status(), status, "{who} listing");
    }

    // Revoke: the same matrix, then the owner revokes and the list is empty.
    let one = format!("/projects/{pid}/invitations/{id}");
    for (who, token, status) in [
        ("member", Some(team.member.access.as_str()), 403),
        ("viewer", Some(team.viewer.access.as_str()), 403),
        ("outsider", Some(team.outsider.access.as_str()), 404),
        ("removed", Some(removed.access.as_str()), 404),
        ("anonymous", None, 401),
    ] {
        let resp = app.delete(&one, token).await;
        assert_eq!(resp.status(), status, "{who} revoking");
    }
    body(app.delete(&one, Some(&team.owner.access)).await, 204).await;
    problem(app.delete(&one, Some(&team.owner.access)).await, 404).await;
    let page = body(app.get(&list, Some(&team.owner.access)).await, 200).await;
    assert!(ids_of(&page).is_empty());

    // A revoked invitation can no longer be accepted, even by the verified invitee.
    app.register(&email, PASSWORD, "Invitee").await;
    verify(&app, &email).await;
    let invitee = app.login(&email, PASSWORD).await;
    assert!(my_invitations(&app, &invitee.access).await.is_empty());
    problem(accept(&app, &id, &invitee.access).await, 404).await;
    let actions = audit_actions(&app, &team.owner.access, &pid).await;
    assert!(
        actions.contains(&"invitation.created".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"invitation.revoked".to_owned()),
        "{actions:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn only_the_verified_invitee_sees_accepts_or_declines() {
    let app = spawn_app().await;
    let (team, removed) = team_and_removed(&app).await;
    let pid = team.project_id.clone();
    let invitee = app.user().await;
    let id = str_of(
        &invited(&app, &team.owner.access, &pid, &invitee.email, "viewer").await,
        "id",
    );
    let accept = format!("/invitations/{id}/accept");
    let decline = format!("/invitations/{id}/decline");

    // Unverified, the invitee sees nothing and cannot answer: the invitation does not exist.
    assert!(my_invitations(&app, &invitee.access).await.is_empty());
    problem(
        app.post(&accept, Some(&invitee.access), &json!({})).await,
        404,
    )
    .await;
    problem(
        app.post(&decline, Some(&invitee.access), &json!({})).await,
        404,
    )
    .await;
    problem(app.get("/users/me/invitations", None).await, 401).await;

    // Nobody else can answer it either, whatever their role in the project.
    for (who, token, status) in [
        ("owner", Some(team.owner.access.as_str()), 404),
        ("member", Some(team.member.access.as_str()), 404),
        ("viewer", Some(team.viewer.access.as_str()), 404),
        ("outsider", Some(team.outsider.access.as_str()), 404),
        ("removed", Some(removed.access.as_str()), 404),
        ("anonymous", None, 401),
    ] {
        for path in [&accept, &decline] {
            let resp = app.post(path, token, &json!({})).await;
            assert_eq!(resp.status(), status, "{who} answering {path}");
        }
        if let Some(token) = token {
            assert!(
                my_invitations(&app, token).await.is_empty(),
                "{who} sees it"
            );
        }
    }

    verify(&app, &invitee.email).await;
    assert_eq!(
        my_invitations(&app, &invitee.access).await,
        vec![id.clone()]
    );
    let me = body(app.get("/users/me", Some(&invitee.access)).await, 200).await;
    assert_eq!(me["email_verified"], true);
    let project = body(
        app.post(&accept, Some(&invitee.access), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(project["id"], pid.as_str());
    assert_eq!(project["role"], "viewer");
    // The membership is there, with the invited role: the viewer reads but cannot write.
    let got = body(
        app.get(&format!("/projects/{pid}"), Some(&invitee.access))
            .await,
        200,
    )
    .await;
    assert_eq!(got["role"], "viewer");
    problem(
        app.post(
            &format!("/projects/{pid}/tasks"),
            Some(&invitee.access),
            &json!({"title": "not allowed"}),
        )
        .await,
        403,
    )
    .await;
    // Answered: gone from both lists, and a second answer finds nothing.
    assert!(my_invitations(&app, &invitee.access).await.is_empty());
    problem(
        app.post(&accept, Some(&invitee.access), &json!({})).await,
        404,
    )
    .await;
    problem(
        app.post(&decline, Some(&invitee.access), &json!({})).await,
        404,
    )
    .await;
    let list = format!("/projects/{pid}/invitations");
    assert!(ids_of(&body(app.get(&list, Some(&team.owner.access)).await, 200).await).is_empty());
    let actions = audit_actions(&app, &team.owner.access, &pid).await;
    for action in ["invitation.created", "invitation.accepted", "member.added"] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action} in {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_declined_invitation_is_gone_and_audited() {
    let app = spawn_app().await;
    let team = app.team().await;
    let invitee = app.user().await;
    verify(&app, &invitee.email).await;
    let id = str_of(
        &invited(
            &app,
            &team.owner.access,
            &team.project_id,
            &invitee.email,
            "member",
        )
        .await,
        "id",
    );
    body(
        app.post(
            &format!("/invitations/{id}/decline"),
            Some(&invitee.access),
            &json!({}),
        )
        .await,
        204,
    )
    .await;
    assert!(my_invitations(&app, &invitee.access).await.is_empty());
    assert_still_outside(&app, &id, &invitee.access, &team.project_id).await;
    let actions = audit_actions(&app, &team.owner.access, &team.project_id).await;
    assert!(
        actions.contains(&"invitation.declined".to_owned()),
        "{actions:?}"
    );
    // Declined, the address may be invited again.
    invited(
        &app,
        &team.owner.access,
        &team.project_id,
        &invitee.email,
        "viewer",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_to_an_unknown_address_waits_for_registration_and_verification() {
    let app = spawn_app().await;
    let team = app.team().await;
    let email = unique_email();
    let id = str_of(
        &invited(&app, &team.owner.access, &team.project_id, &email, "member").await,
        "id",
    );
    // Registered with the address in another case: still the same address.
    let created = body(
        app.register(&email.to_uppercase(), PASSWORD, "Newcomer")
            .await,
        201,
    )
    .await;
    assert_eq!(created["email_verified"], false);
    let newcomer = app.login(&email, PASSWORD).await;
    assert!(my_invitations(&app, &newcomer.access).await.is_empty());
    verify(&app, &email).await;
    let mine = body(
        app.get("/users/me/invitations", Some(&newcomer.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids_of(&mine), vec![id.clone()]);
    let item = &mine["items"][0];
    assert_eq!(item["project_name"], "Team project");
    assert_eq!(item["invited_by_name"], "Test User");
    assert_eq!(item["role"], "member");
    body(
        app.post(
            &format!("/invitations/{id}/accept"),
            Some(&newcomer.access),
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    let members = body(
        app.get(
            &format!("/projects/{}/members", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let newcomer_id = str_of(&created, "id");
    assert!(
        members["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == newcomer_id.as_str() && m["role"] == "member"),
        "{members}"
    );
    app.stop().await;
}

#[tokio::test]
async fn changing_the_email_hides_invitations_until_the_new_address_is_verified() {
    let app = spawn_app().await;
    let team = app.team().await;
    let invitee = app.user().await;
    verify(&app, &invitee.email).await;
    let new_email = unique_email();
    let id = str_of(
        &invited(
            &app,
            &team.owner.access,
            &team.project_id,
            &new_email,
            "member",
        )
        .await,
        "id",
    );
    assert!(my_invitations(&app, &invitee.access).await.is_empty());
    let changed = body(
        app.patch(
            "/users/me",
            Some(&invitee.access),
            &json!({"email": new_email, "current_password": PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["email_verified"], false);
    assert!(my_invitations(&app, &invitee.access).await.is_empty());
    verify(&app, &new_email).await;
    assert_eq!(my_invitations(&app, &invitee.access).await, vec![id]);
    app.stop().await;
}

#[tokio::test]
async fn inviting_a_pending_address_or_a_member_is_a_409_naming_email() {
    let app = spawn_app().await;
    let team = app.team().await;
    let pid = &team.project_id;
    let email = unique_email();
    let first = invited(&app, &team.owner.access, pid, &email, "member").await;
    for again in [email.clone(), email.to_uppercase()] {
        let conflict = problem(
            invite(&app, Some(&team.owner.access), pid, &again, "viewer").await,
            409,
        )
        .await;
        assert!(
            str_of(&conflict, "detail").starts_with("email:"),
            "{conflict}"
        );
    }
    for member in [&team.member.email, &team.owner.email] {
        let conflict = problem(
            invite(
                &app,
                Some(&team.owner.access),
                pid,
                &member.to_uppercase(),
                "owner",
            )
            .await,
            409,
        )
        .await;
        assert!(
            str_of(&conflict, "detail").starts_with("email:"),
            "{conflict}"
        );
    }
    // After a revocation the address may be invited again, with another role.
    let path = format!("/projects/{pid}/invitations/{}", str_of(&first, "id"));
    body(app.delete(&path, Some(&team.owner.access)).await, 204).await;
    let second = invited(&app, &team.owner.access, pid, &email, "viewer").await;
    assert_eq!(second["role"], "viewer");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let team = app.team().await;
    let pid = &team.project_id;
    for email in ["not-an-email", "ada@localhost", ""] {
        invalid(
            invite(&app, Some(&team.owner.access), pid, email, "member").await,
            "email",
        )
        .await;
    }
    invalid(
        invite(
            &app,
            Some(&team.owner.access),
            pid,
            &unique_email(),
            "admin",
        )
        .await,
        "role",
    )
    .await;
    crate::helpers::names(
        app.post(
            &format!("/projects/{pid}/invitations"),
            Some(&team.owner.access),
            &json!({"email": unique_email(), "role": "member", "extra": 1}),
        )
        .await,
        "extra",
    )
    .await;
    let bad = app
        .send(
            Method::POST,
            "/invitations/not-a-uuid/accept",
            Some(&team.owner.access),
            None,
        )
        .await;
    assert_eq!(bad.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn the_answer_is_the_same_whether_or_not_the_address_has_an_account() {
    let app = spawn_app().await;
    let team = app.team().await;
    let with_account = team.outsider.email.clone();
    let without_account = unique_email();
    let shape = |resp_body: &Value, email: &str| {
        let mut body = resp_body.clone();
        assert_eq!(body["email"], email);
        for volatile in ["id", "email", "created_at", "expires_at"] {
            body.as_object_mut().unwrap().remove(volatile);
        }
        body
    };
    let a = invite(
        &app,
        Some(&team.owner.access),
        &team.project_id,
        &with_account,
        "member",
    )
    .await;
    let b = invite(
        &app,
        Some(&team.owner.access),
        &team.project_id,
        &without_account,
        "member",
    )
    .await;
    assert_eq!(a.status(), b.status());
    let header_names = |r: &reqwest::Response| {
        let mut names: Vec<String> = r.headers().keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(header_names(&a), header_names(&b));
    let (a, b) = (body(a, 201).await, body(b, 201).await);
    assert_eq!(shape(&a, &with_account), shape(&b, &without_account));
    // A second invitation of each: the same 409, word for word.
    let a = problem(
        invite(
            &app,
            Some(&team.owner.access),
            &team.project_id,
            &with_account,
            "viewer",
        )
        .await,
        409,
    )
    .await;
    let b = problem(
        invite(
            &app,
            Some(&team.owner.access),
            &team.project_id,
            &without_account,
            "viewer",
        )
        .await,
        409,
    )
    .await;
    assert_eq!(a["detail"], b["detail"]);
    assert_eq!(a["type"], b["type"]);
    // Both are listed alike.
    let page = body(
        app.get(
            &format!("/projects/{}/invitations", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&items[0]), keys(&items[1]));
    app.stop().await;
}

#[tokio::test]
async fn invitations_expire_and_an_expired_address_may_be_invited_again() {
    let app = spawn_app_with(&[("TASKLIGHT_INVITATION_TTL_SECS", "1")]).await;
    let team = app.team().await;
    let invitee = app.user().await;
    verify(&app, &invitee.email).await;
    let invitation = invited(
        &app,
        &team.owner.access,
        &team.project_id,
        &invitee.email,
        "member",
    )
    .await;
    let created = chrono::DateTime::parse_from_rfc3339(&str_of(&invitation, "created_at")).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(&str_of(&invitation, "expires_at")).unwrap();
    assert_eq!((expires - created).num_seconds(), 1);
    let id = str_of(&invitation, "id");
    // Poll (at most 5 s) until it has expired: then it is gone from both lists.
    let started = Instant::now();
    while !my_invitations(&app, &invitee.access).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the invitation never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = format!("/projects/{}/invitations", team.project_id);
    assert!(ids_of(&body(app.get(&list, Some(&team.owner.access)).await, 200).await).is_empty());
    assert_still_outside(&app, &id, &invitee.access, &team.project_id).await;
    invited(
        &app,
        &team.owner.access,
        &team.project_id,
        &invitee.email,
        "viewer",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_invitation_lists_are_paginated_and_writes_are_rate_limited() {
    let app = spawn_app().await;
    let team = app.team().await;
    let mut made = Vec::new();
    for _ in 0..3 {
        let resp = invite(
            &app,
            Some(&team.owner.access),
            &team.project_id,
            &unique_email(),
            "member",
        )
        .await;
        // Invitation writes count against the caller's quota like every other write.
        assert!(
            header(&resp, "ratelimit-policy").contains("user"),
            "{:?}",
            resp.headers()
        );
        made.push(str_of(&body(resp, 201).await, "id"));
    }
    let path = format!("/projects/{}/invitations?limit=2", team.project_id);
    let first = body(app.get(&path, Some(&team.owner.access)).await, 200).await;
    assert_eq!(ids_of(&first).len(), 2);
    let cursor = str_of(&first, "next_cursor");
    let second = body(
        app.get(&format!("{path}&cursor={cursor}"), Some(&team.owner.access))
            .await,
        200,
    )
    .await;
    assert_eq!(second["next_cursor"], Value::Null);
    let mut all = ids_of(&first);
    all.extend(ids_of(&second));
    assert_eq!(all, made);
    app.stop().await;
}

#[tokio::test]
async fn the_verify_email_command_marks_an_address_verified() {
    let app = spawn_app().await;
    let team = app.team().await;
    let invitee = app.user().await;
    let id = str_of(
        &invited(
            &app,
            &team.owner.access,
            &team.project_id,
            &invitee.email,
            "member",
        )
        .await,
        "id",
    );
    // The command waits on a thread of its own: this test's one-thread runtime is also the
    // server's, and a server stopped mid-transaction would hold SQLite's write lock until the
    // command gave up.
    let run = |email: &str| {
        let mut command = crate::helpers::tasklight_command(app.db.url(), &["verify-email", email]);
        async move {
            tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
                .await
                .expect("the command's thread")
        }
    };
    let done = run(&invitee.email.to_uppercase()).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("verified"));
    // The command is another process with no Redis: this instance reads the address's state
    // from the database for invitations, so it sees the change at once.
    assert_eq!(my_invitations(&app, &invitee.access).await, vec![id]);
    let unknown = run(&unique_email()).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_accepted_on_b_is_seen_on_a_and_c_within_a_second() {
    let Some(redis) = crate::cluster::redis_url() else {
        return;
    };
    let cluster = crate::cluster::Cluster::start(&redis).await;
    let app = &cluster.a;
    let team = app.team().await;
    let invitee = app.user().await;
    verify(app, &invitee.email).await;
    let id = str_of(
        &invited(
            app,
            &team.owner.access,
            &team.project_id,
            &invitee.email,
            "member",
        )
        .await,
        "id",
    );
    let project = format!("/projects/{}", team.project_id);
    // A and C have cached that the invitee is not a member (their in-process TTL is a minute):
    // the second round is answered from that cache.
    for i in [0, 2, 0, 2] {
        assert_eq!(cluster.get_on(i, &project, &invitee.access).await, 404);
    }
    let accepted = app
        .client
        .post(format!(
            "http://{}/api/v1/invitations/{id}/accept",
            cluster.addr(1)
        ))
        .bearer_auth(&invitee.access)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let started = Instant::now();
    let (a, c) = tokio::join!(
        cluster.time_until_answers(0, &project, &invitee.access, 200),
        cluster.time_until_answers(2, &project, &invitee.access, 200)
    );
    eprintln!("[measured] invitation accepted on B: A saw the member after {a:?}, C after {c:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "A after {a:?}, C after {c:?}"
    );
    let task = format!("/tasks/{}", team.task_id);
    assert_eq!(cluster.get_on(0, &task, &invitee.access).await, 200);
    cluster.stop().await;
}
