//! The application service, wrapped: each answer marks its connection answered, and while the
//! server drains it says `Connection: close`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;

use actix_http::{ConnectionType, Request, Response};
use actix_service::{Service, ServiceFactory};
use tokio_util::sync::CancellationToken;

use crate::web::io::ConnState;

/// Wraps the application's service factory.
pub(crate) struct Draining<S, B> {
    pub(crate) inner: S,
    pub(crate) draining: CancellationToken,
    pub(crate) body: PhantomData<fn() -> B>,
}

impl<S, B> ServiceFactory<Request> for Draining<S, B>
where
    S: ServiceFactory<Request, Config = ()>,
    S::Future: 'static,
    S::Service: 'static,
    S::Response: Into<Response<B>>,
    S::Error: 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Config = ();
    type Service = DrainingService<S::Service, B>;
    type InitError = S::InitError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, S::InitError>>>>;

    fn new_service(&self, _: ()) -> Self::Future {
        let inner = self.inner.new_service(());
        let draining = self.draining.clone();
        Box::pin(async move {
            Ok(DrainingService {
                inner: inner.await?,
                draining,
                body: PhantomData,
            })
        })
    }
}

/// The wrapped service of one worker.
pub(crate) struct DrainingService<S, B> {
    inner: S,
    draining: CancellationToken,
    body: PhantomData<fn() -> B>,
}

impl<S, B> Service<Request> for DrainingService<S, B>
where
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    S::Future: 'static,
    S::Error: 'static,
    B: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>>>>;

    actix_service::forward_ready!(inner);

    fn call(&self, request: Request) -> Self::Future {
        let conn = request.conn_data::<Rc<ConnState>>().cloned();
        let draining = self.draining.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            if let Some(conn) = conn {
                conn.answered();
            }
            let mut response: Response<B> = answer?.into();
            if draining.is_cancelled() {
                response
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            Ok(response)
        })
    }
}
