//! The `local sync` process of one account's registry: the front door clients reach the
//! registry through ([`crate::front`]), and the endpoint the registry's notifications
//! reach the sync at ([`crate::sync`]).

use std::{convert::Infallible, sync::Arc};

use anyhow::{Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::{front::Front, ports::Ports, sync::Sync};

/// The process's main loop, for the registry of `account` (`None`: moto's own) at the
/// ports of `ports` that serve it.
pub async fn run(ports: &Ports, region: &str, account: Option<&str>) -> Result<()> {
    let sync = Arc::new(Sync::new(ports, region, account).await?);
    let front = tokio::net::TcpListener::bind(("127.0.0.1", ports.registry))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} for the registry's clients", ports.registry))?;
    let front = Arc::new(Front::new(sync.clone(), ports.registry_backend)).serve(front);
    tokio::spawn(async move {
        if let Err(err) = front.await {
            eprintln!("sync: the registry's front stopped: {err:#}");
            std::process::exit(1);
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports.sync))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", ports.sync))?;
    eprintln!("sync: listening on 127.0.0.1:{} for registry events", ports.sync);

    loop {
        let (stream, _) = listener.accept().await?;
        let sync = sync.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let sync = sync.clone();
                async move { Ok::<_, Infallible>(sync.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
