//! API1:2023 Broken Object Level Authorization: the authorization matrix, endpoint by endpoint:
//! owner, member, viewer, outsider, admin (not a member of the project) and anonymous. Outsiders
//! get 404, never 403; viewers 403 on writes; non-admins 403 on admin routes; anonymous callers
//! 401.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Team, TestApp, TestUser, body, problem, read, spawn_app};

#[derive(Clone, Copy, Debug)]
enum Who {
    Owner,
    Member,
    Viewer,
    Outsider,
    Admin,
    Anonymous,
}
use Who::*;

/// Every caller with an account. In `expect` cases, denied callers come first, so that an
/// allowed (possibly destructive) call comes last.
const USERS: [Who; 5] = [Outsider, Viewer, Member, Owner, Admin];

struct Matrix {
    app: TestApp,
    team: Team,
    admin: TestUser,
}

impl Matrix {
    async fn new() -> Self {
        let app = spawn_app().await;
        let (team, admin) = futures::join!(app.team(), app.admin());
        Self { app, team, admin }
    }

    fn token(&self, who: Who) -> Option<&str> {
        let user = match who {
            Owner => &self.team.owner,
            Member => &self.team.member,
            Viewer => &self.team.viewer,
            Outsider => &self.team.outsider,
            Admin => &self.admin,
            Anonymous => return None,
        };
        Some(&user.access)
    }

    /// Sends the same request as each caller in turn and checks each status.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        request: Option<Value>,
        cases: &[(Who, u16)],
    ) {
        for &(who, status) in cases {
            let resp = self
                .app
                .send(method.clone(), path, self.token(who), request.as_ref())
                .await;
            if resp.status() != status {
                let (actual, _, text) = read(resp).await;
                panic!("{method} {path} as {who:?}: expected {status}, got {actual}: {text}");
            }
            if status >= 400 {
                problem(resp, status).await
            } else {
                body(resp, status).await
            };
        }
    }

    fn task(&self) -> String {
        format!("/tasks/{}", self.team.task_id)
    }

    fn project(&self) -> String {
        format!("/projects/{}", self.team.project_id)
    }
}

#[tokio::test]
async fn api1_project_routes_follow_the_role_matrix() {
    let m = Matrix::new().await;
    let p = m.project();
    let read = [
        (Anonymous, 401),
        (Outsider, 404),
        (Admin, 404),
        (Viewer, 200),
        (Member, 200),
        (Owner, 200),
    ];
    let owner_only = |ok: u16| {
        [
            (Anonymous, 401),
            (Outsider, 404),
            (Admin, 404),
            (Viewer, 403),
            (Member, 403),
            (Owner, ok),
        ]
    };
    m.expect(Method::GET, &p, None, &read).await;
    m.expect(
        Method::PATCH,
        &p,
        Some(json!({"description": "x"})),
        &owner_only(200),
    )
    .await;
    m.expect(Method::GET, &format!("{p}/audit"), None, &owner_only(200))
        .await;
    m.expect(Method::GET, "/projects", None, &[(Anonymous, 401)])
        .await;
    for who in USERS {
        m.expect(Method::GET, "/projects", None, &[(who, 200)])
            .await;
    }
    m.expect(
        Method::POST,
        "/projects",
        Some(json!({"name": "anon"})),
        &[(Anonymous, 401)],
    )
    .await;
    m.expect(Method::DELETE, &p, None, &owner_only(204)).await;
    m.app.stop().await;
}

#[tokio::test]
async fn api1_member_routes_follow_the_role_matrix() {
    let m = Matrix::new().await;
    let members = format!("{}/members", m.project());
    let read = [
        (Anonymous, 401),
        (Outsider, 404),
        (Admin, 404),
        (Viewer, 200),
        (Member, 200),
        (Owner, 200),
    ];
    m.expect(Method::GET, &members, None, &read).await;
    let put = [
        (Anonymous, 401),
        (Outsider, 404),
        (Admin, 404),
        (Viewer, 403),
        (Member, 403),
        (Owner, 200),
    ];
    let same_role = Some(json!({"role": "member"}));
    m.expect(
        Method::PUT,
        &format!("{members}/{}", m.team.member.id),
        same_role,
        &put,
    )
    .await;
    let promote = Some(json!({"role": "owner"}));
    m.expect(
        Method::PUT,
        &format!("{members}/{}", m.team.viewer.id),
        promote,
        &put[..5],
    )
    .await;
    let remove = [
        (Anonymous, 401),
        (Outsider, 404),
        (Admin, 404),
        (Member, 403),
        (Owner, 204),
    ];
    m.expect(
        Method::DELETE,
        &format!("{members}/{}", m.team.viewer.id),
        None,
        &remove,
    )
    .await;
    let remove_owner = [
        (Anonymous, 401),
        (Outsider, 404),
        (Admin, 404),
        (Member, 403),
    ];
    m.expect(
        Method::DELETE,
        &format!("{members}/{}", m.team.owner.id),
        None,
        &remove_owner,
    )
    .await;
    m.app.stop().await;
}

#[tokio::test]
async fn api1_task_routes_follow_the_role_matrix() {
    let m = Matrix::new().await;
    let (t, p) = (m.task(), m.project());
    let read = [
        (Anonymous, 401),
        (Outsider, 404),
        (Admin, 404),
        (Viewer, 200),
        (Member, 200),
        (Owner, 200),
    ];
    let write = |ok: u16| {
        [
            (Anonymous, 401),
            (Outsider, 404),
            (Admin, 404),
            (Viewer, 403),
            (Member, ok),
            (Owner, ok),
        ]
    };
    m.expect(Method::GET, &format!("{p}/tasks"), None, &read)
        .await;
    m.expect(
        Method::POST,
        &format!("{p}/tasks"),
        Some(json!({"title": "new"})),
        &write(201),
    )
    .await;
    m.expect(Method::GET, &t, None, &read).await;
    m.expect(
        Method::PATCH,
        &t,
        Some(json!({"status": "done"})),
        &write(200),
    )
    .await;
    let second = m
        .app
        .create_task(
            &m.team.owner.access,
            &m.team.project_id,
            json!({"title": "second"}),
        )
        .await;
    m.expect(Method::DELETE, &t, None, &write(204)[..5]).await;
    let second = format!("/tasks/{}", second["id"].as_str().unwrap());
    m.expect(
        Method::DELETE,
        &second,
        None,
        &[(Viewer, 403), (Owner, 204)],
    )
    .await;
    m.app.stop().await;
}

#[tokio::test]
async fn api1_user_and_admin_routes_follow_the_role_matrix() {
    let m = Matrix::new().await;
    for who in USERS {
        m.expect(Method::GET, "/users/me", None, &[(who, 200)])
            .await;
    }
    m.expect(Method::GET, "/users/me", None, &[(Anonymous, 401)])
        .await;
    m.expect(
        Method::PATCH,
        "/users/me",
        Some(json!({"display_name": "x"})),
        &[(Anonymous, 401)],
    )
    .await;
    let admin_only = |ok: u16| {
        [
            (Anonymous, 401),
            (Outsider, 403),
            (Viewer, 403),
            (Member, 403),
            (Owner, 403),
            (Admin, ok),
        ]
    };
    m.expect(Method::GET, "/admin/users", None, &admin_only(200))
        .await;
    m.expect(Method::GET, "/admin/audit", None, &admin_only(200))
        .await;
    let target = format!("/admin/users/{}", m.team.outsider.id);
    m.expect(
        Method::PATCH,
        &target,
        Some(json!({"disabled": false})),
        &admin_only(200),
    )
    .await;
    m.expect(Method::POST, "/auth/logout", None, &[(Anonymous, 401)])
        .await;
    m.app.stop().await;
}
