//! The session's Auth service: BuildKit asks it for a registry's credentials when a build
//! reads from a registry (its cache, `cachefrom`), as the docker CLI's auth provider
//! answers. Only the one registry the build was given credentials for gets them; any other
//! host is asked anonymously. The credentials travel on the session's connection, never in
//! a request's query or a file.

use bollard::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse, GetTokenAuthorityRequest,
    GetTokenAuthorityResponse, VerifyTokenAuthorityRequest, VerifyTokenAuthorityResponse, auth_server::Auth,
};
use tonic::{Request, Response, Status};

use crate::clients::ecr::RegistryAuth;

/// The gRPC methods the session exposes for this service.
pub(super) const METHODS: [&str; 4] = [
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
];

pub(super) struct Credentials(pub Option<RegistryAuth>);

#[tonic::async_trait]
impl Auth for Credentials {
    async fn credentials(&self, request: Request<CredentialsRequest>) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        let response = match &self.0 {
            Some(auth) if auth.host == host => {
                CredentialsResponse { username: auth.username.clone(), secret: auth.password.clone() }
            }
            _ => CredentialsResponse::default(),
        };
        Ok(Response::new(response))
    }

    // ECR and the local registry take basic credentials: BuildKit then fetches any token
    // itself. "Unimplemented" is how the CLI's provider declines these too.
    async fn fetch_token(&self, _: Request<FetchTokenRequest>) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fetch_token"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("get_token_authority"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}
