//! Access control through the Rust `mongodb` driver against `eddy serve --auth`: the
//! first user through the localhost exception, SCRAM-SHA-256 and SCRAM-SHA-1 logins, and
//! a `readWrite` user on one database that can write and watch it but not another
//! database or the cluster; users kept across a kill -9 with salted SCRAM credentials only.

mod common;

use std::time::Duration;

use bson::{doc, Document};
use common::{error_code, TestServer};

fn uri(server: &TestServer, user: &str, pwd: &str, source: &str, mechanism: &str) -> String {
    format!(
        "mongodb://{user}:{pwd}@localhost:{}/?directConnection=true&authSource={source}&authMechanism={mechanism}&serverSelectionTimeoutMS=10000",
        server.port()
    )
}

#[tokio::test]
async fn scram_logins_and_roles_through_the_rust_driver() {
    let mut server = TestServer::start_with(&["--replSet", "rs0", "--auth"]);
    let anonymous = server.direct_client().await;
    let denied = anonymous
        .database("app")
        .collection::<Document>("c")
        .find_one(doc! {})
        .await
        .expect_err("unauthenticated");
    assert_eq!(error_code(&denied), Some(13));
    anonymous
        .database("admin")
        .run_command(doc! {"createUser": "admin", "pwd": "s3cret", "roles": ["root"]})
        .await
        .expect("the localhost exception creates the first user");

    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-1"] {
        let root =
            mongodb::Client::with_uri_str(uri(&server, "admin", "s3cret", "admin", mechanism))
                .await
                .expect("uri");
        root.database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .expect("authenticated");
        let wrong =
            mongodb::Client::with_uri_str(uri(&server, "admin", "wrong", "admin", mechanism))
                .await
                .expect("uri");
        let err = wrong
            .database("app")
            .collection::<Document>("c")
            .find_one(doc! {})
            .await
            .expect_err("wrong password");
        assert!(err.to_string().contains("Authentication failed"), "{err}");
    }

    let root =
        mongodb::Client::with_uri_str(uri(&server, "admin", "s3cret", "admin", "SCRAM-SHA-256"))
            .await
            .expect("uri");
    root.database("app")
        .run_command(doc! {"createUser": "writer", "pwd": "pw", "roles": ["readWrite"]})
        .await
        .expect("createUser");
    let writer =
        mongodb::Client::with_uri_str(uri(&server, "writer", "pw", "app", "SCRAM-SHA-256"))
            .await
            .expect("uri");
    let app = writer.database("app").collection::<Document>("c");
    let mut stream = app
        .watch()
        .max_await_time(Duration::from_millis(500))
        .await
        .expect("watch its own database");
    app.insert_one(doc! {"_id": 1}).await.expect("insert");
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(e) = stream.next_if_any().await.expect("getMore") {
                return e;
            }
        }
    })
    .await
    .expect("an event");
    assert_eq!(event.document_key, Some(doc! {"_id": 1}));
    let other = writer.database("other").collection::<Document>("c");
    assert_eq!(
        error_code(&other.insert_one(doc! {}).await.expect_err("other db")),
        Some(13)
    );
    assert_eq!(
        error_code(&other.watch().await.expect_err("watch other db")),
        Some(13)
    );
    assert_eq!(
        error_code(&writer.watch().await.expect_err("cluster stream")),
        Some(13)
    );

    // Users are durable: after a kill -9 the same passwords log in, and what is stored
    // is a salt, an iteration count and two keys per mechanism, never the password.
    drop((root, writer, anonymous));
    server.kill9();
    server.start_again();
    let writer = mongodb::Client::with_uri_str(uri(&server, "writer", "pw", "app", "SCRAM-SHA-1"))
        .await
        .expect("uri");
    writer
        .database("app")
        .collection::<Document>("c")
        .find_one(doc! {})
        .await
        .expect("the user survived the restart");
    let root =
        mongodb::Client::with_uri_str(uri(&server, "admin", "s3cret", "admin", "SCRAM-SHA-256"))
            .await
            .expect("uri");
    let info = root
        .database("app")
        .run_command(doc! {"usersInfo": "writer", "showCredentials": true})
        .await
        .expect("usersInfo");
    let user = info.get_array("users").expect("users")[0]
        .as_document()
        .expect("a user")
        .clone();
    let credentials = user.get_document("credentials").expect("credentials");
    assert_eq!(
        credentials.keys().collect::<Vec<_>>(),
        ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    );
    for (_, c) in credentials {
        let c = c.as_document().expect("a mechanism's credentials");
        let mut fields: Vec<&String> = c.keys().collect();
        fields.sort();
        assert_eq!(fields, ["iterationCount", "salt", "serverKey", "storedKey"]);
    }
    assert!(!format!("{user:?}").contains("\"pw\""), "{user:?}");
}
