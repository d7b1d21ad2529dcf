//! The live control API: drive an experiment by hand, as with Toxiproxy.
//!
//! Plain JSON over HTTP/1.1, bound to loopback unless the user asks otherwise:
//!
//! | method and path | does | answers |
//! |---|---|---|
//! | `GET /` | describes the proxy | `{"listen", "upstream", "faults", "connections"}` counts |
//! | `GET /connections` | lists live connections | `[{"conn", "client_addr", "client_id", "age_ms", "bytes_up", "bytes_down"}]` |
//! | `GET /faults` | lists faults and their state | `[{"id", "spec", "kind", "origin", "status", "occurrences"}]` |
//! | `POST /faults` with `{"spec": "cut:for=10s"}` | adds a fault; `at` counts from now | `201 {"id", "spec"}`, or `400 {"error"}` |
//! | `DELETE /faults/{id}` | ends it now and cancels later occurrences | `204`, or `404 {"error"}` |

use crate::board::{FaultBoard, FaultInfo};
use crate::conn::ConnRegistry;
use crate::control_listener::ControlListener;
use crate::scheduler::ScheduleHandle;
use crate::spec::FaultSpec;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Clone)]
pub(crate) struct ControlState {
    pub board: Arc<FaultBoard>,
    pub conns: Arc<ConnRegistry>,
    pub schedule: ScheduleHandle,
    pub listen: String,
    pub upstream: String,
}

#[derive(Serialize)]
struct Overview {
    listen: String,
    upstream: String,
    faults: usize,
    connections: usize,
}

#[derive(Serialize)]
struct ConnectionInfo {
    conn: u64,
    client_addr: String,
    client_id: Option<String>,
    age_ms: u64,
    bytes_up: u64,
    bytes_down: u64,
}

#[derive(Deserialize)]
struct NewFault {
    spec: String,
}

#[derive(Serialize)]
struct Created {
    id: u64,
    spec: String,
}

#[derive(Serialize)]
struct ApiError {
    error: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ApiError { error: message })).into_response()
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: ControlState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(overview))
        .route("/connections", get(connections))
        .route("/faults", get(list_faults).post(add_fault))
        .route("/faults/{id}", delete(remove_fault))
        .with_state(state);
    axum::serve(ControlListener::new(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn overview(State(s): State<ControlState>) -> Json<Overview> {
    Json(Overview {
        listen: s.listen.clone(),
        upstream: s.upstream.clone(),
        faults: s.board.list().len(),
        connections: s.conns.live().len(),
    })
}

async fn connections(State(s): State<ControlState>) -> Json<Vec<ConnectionInfo>> {
    Json(
        s.conns
            .live()
            .iter()
            .map(|c| ConnectionInfo {
                conn: c.id,
                client_addr: c.client_addr.to_string(),
                client_id: c.client_id().map(str::to_string),
                age_ms: c.opened_at.elapsed().as_millis() as u64,
                bytes_up: c.bytes_up.load(Ordering::Relaxed),
                bytes_down: c.bytes_down.load(Ordering::Relaxed),
            })
            .collect(),
    )
}

async fn list_faults(State(s): State<ControlState>) -> Json<Vec<FaultInfo>> {
    Json(s.board.list())
}

async fn add_fault(
    State(s): State<ControlState>,
    body: Result<Json<NewFault>, JsonRejection>,
) -> Response {
    // A body that is not the JSON we expect (wrong content type, bad JSON, missing field) is
    // answered in JSON like every other error, with the status axum chose for it.
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return error(
                rejection.status(),
                format!(
                    r#"{}; expected a JSON body like {{"spec": "cut:for=10s"}}"#,
                    rejection.body_text()
                ),
            )
        }
    };
    if !s.schedule.is_alive() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the fault scheduler has stopped: no fault can start in this proxy any more".into(),
        );
    }
    match FaultSpec::parse(&body.spec) {
        Ok(spec) => {
            let text = spec.to_string();
            let id = s.schedule.add_now(spec);
            (StatusCode::CREATED, Json(Created { id, spec: text })).into_response()
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("bad fault `{}`: {e}", body.spec),
        ),
    }
}

async fn remove_fault(State(s): State<ControlState>, Path(id): Path<u64>) -> Response {
    if s.board.remove(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no fault with id {id}"))
    }
}
