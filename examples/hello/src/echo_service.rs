//! `echo-service`: the out-of-process host of Contoso's echo services. The broker starts it
//! on demand with the service's name in `APPIPC_APP_SERVICE`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let name = std::env::var("APPIPC_APP_SERVICE").unwrap_or_else(|_| "com.contoso.echo".into());
    let result = async {
        let session = appipc::Session::connect().await?;
        appipc_examples::serve(&session, &name).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("echo-service: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
