//! The floor of the cold-start benchmark (scripts/bench): a `lambda_http` function that answers
//! every request with its own body, on the same runtime as the real functions (tokio's
//! current-thread scheduler, `lambda_http::run`). Whatever a real function costs above this is
//! its own doing.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|request: Request| async move {
        Ok::<_, Error>(Response::new(Body::from(request.body().as_ref().to_vec())))
    }))
    .await
}
