//! `services-app`: Contoso.Services' application. It serves its in-process app service
//! `com.contoso.inproc` whether it was launched by the user or started in the background by
//! the broker for a connection (`AppInstance::get_activated_event_args` is `Background`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let activation = appipc::AppInstance::get_activated_event_args();
    appipc_examples::elog!("services-app: started ({activation:?})");
    let result = async {
        let session = appipc::Session::connect().await?;
        appipc_examples::serve(&session, "com.contoso.inproc").await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("services-app: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
