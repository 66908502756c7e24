//! Logs carry ids, never an email address or a display name: what the functions log while they
//! handle webhooks and session requests that carry both, captured at the most verbose level the
//! template allows (`LogLevel=TRACE`), through the functions' own subscriber, AWS SDK and HTTP
//! client included (at `TRACE` the SDK logs whole bodies: the subscriber holds it to `DEBUG`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use nango_connect::access::OrganizationAccess;
use nango_connect::bootstrap::log_subscriber;
use nango_connect::config::AllowedIntegrations;
use nango_connect::store::ConnectionStore;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::*;

const EMAIL: &str = "alice@example.com";
const DISPLAY_NAME: &str = "Alice Example";

/// Everything logged on this thread until the guard is dropped. The tests run on tokio's
/// current-thread runtime, so every task the handlers spawn logs here too.
fn capture() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(logs.clone());
    // The functions' own subscriber, at the most verbose level the template offers.
    let subscriber = log_subscriber(Some("TRACE"), None, true, move || sink.clone());
    (tracing::subscriber::set_default(subscriber), logs)
}

#[tokio::test]
async fn webhooks_and_sessions_carrying_an_email_and_a_display_name_log_neither() {
    let (_guard, logs) = capture();
    let nango = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions"))
        .respond_with(session_created())
        .mount(&nango)
        .await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions/reconnect"))
        .respond_with(session_created())
        .mount(&nango)
        .await;

    // Webhooks: a creation, its duplicate, a refresh failure, and (in another container) a
    // creation naming someone else than Nango's tags, which is logged as a conflict.
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client.clone(), table.clone());
    let receiver = webhook_receiver(store.clone()).await;
    for body in [creation(), creation(), refresh_failure(Some(owner_tags()))] {
        assert_eq!(deliver(&receiver, &body).await.status, 200);
    }
    let mut someone_else = owner_tags();
    someone_else["end_user_id"] = json!("mallory");
    let other_container = webhook_receiver(ConnectionStore::new(client, table)).await;
    let conflicting = deliver(
        &other_container,
        &auth_webhook("creation", true, Some(someone_else), None),
    )
    .await;
    assert_eq!(conflicting.status, 200);
    // A failed authorization (no tags, but an error text), and a webhook that is refused.
    deliver(
        &receiver,
        &auth_webhook(
            "creation",
            false,
            None,
            Some(("invalid_callback", "denied")),
        ),
    )
    .await;
    let unsigned = Event::from(WEBHOOK).body(&creation()).request();
    assert_eq!(receiver.handle(unsigned).await.status(), 401);

    // Sessions: a new one for a caller whose claims carry both, and a reconnect, which sends the
    // connection's tags (both again) to Nango.
    let create = create_session(&nango.uri(), None);
    let created = answer(create.handle(Event::from(POST_SESSIONS).request()).await);
    assert_eq!(created.status, 201, "{}", created.body);
    let reconnect = reconnect_session_allowing(
        &nango.uri(),
        store,
        OrganizationAccess::Shared,
        AllowedIntegrations::default(),
    );
    let request = Event::from(POST_RECONNECT)
        .claims(Some(
            json!({"sub": "user-42", "org_id": "org-7", "email": EMAIL, "name": DISPLAY_NAME}),
        ))
        .request();
    let reconnected = answer(reconnect.handle(request).await);
    assert_eq!(reconnected.status, 201, "{}", reconnected.body);

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    // The capture works, and saw the handlers and the SDK at work.
    for expected in [
        "auth webhook",
        "another owner",
        "connect session created",
        "reconnect session created",
        "user-42",
    ] {
        assert!(
            logs.contains(expected),
            "nothing logged {expected:?}: {logs}"
        );
    }
    // One user's authorization can be traced by connection id and by end user id.
    assert!(
        logs.lines().any(|line| line.contains("auth webhook")
            && line.contains("user-42")
            && line.contains(CONNECTION_ID)),
        "the auth webhook line names neither the end user nor the connection: {logs}"
    );
    for secret in [EMAIL, "alice@", DISPLAY_NAME, "Alice"] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret:?} logged: {leaks:#?}");
    }
}
