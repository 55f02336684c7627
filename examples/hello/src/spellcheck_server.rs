//! `spellcheck-server --serve -Embedding`: `Contoso.SpellCheck`'s packaged COM server. The
//! broker starts it for an activation of the spell checker class (CLSID `da3b939e-…`, ProgID
//! `Contoso.SpellChecker`): full trust, with the identity of the application `Server` that
//! declares the class (Activate-As-Package), the exe server's `arguments` and `-Embedding`. It
//! registers its class object (`REGCLS_MULTIPLEUSE`: every activation while it runs reaches
//! this process), makes one object per activation, and exits when its last object is released
//! (the broker then starts a new process for the next activation). Started otherwise (without
//! `-Embedding`), it says so and exits. See `appipc_examples::spellcheck`.

use std::sync::Arc;

use appipc::Session;
use appipc::com::{self, ComServer, REGCLS_MULTIPLEUSE};
use appipc::rpc::{Interfaces, RpcCaller};
use appipc_examples::elog;
use appipc_examples::spellcheck::{self, Checker, SpellChecker};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    if !com::is_embedding() {
        elog!(
            "spellcheck-server: a COM server: the broker starts it (with -Embedding) when a \
             client creates a {} object",
            spellcheck::VERSION_INDEPENDENT_PROG_ID
        );
        return std::process::ExitCode::SUCCESS;
    }
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            elog!("spellcheck-server: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> appipc::Result<()> {
    let session = Session::connect().await?;
    let server = ComServer::new(&session);
    server
        .register_class_object(spellcheck::CLSID, REGCLS_MULTIPLEUSE, |caller: &RpcCaller| {
            let who = if caller.package_family_name.is_empty() {
                "unpackaged"
            } else {
                caller.package_family_name.as_str()
            };
            let object = Arc::new(Checker::new(who));
            Ok(Interfaces::new().with::<dyn SpellChecker>(object))
        })
        .await?;
    elog!(
        "spellcheck-server: pid {} ({}!{}) registered {} (REGCLS_MULTIPLEUSE)",
        std::process::id(),
        std::env::var("APPIPC_PACKAGE_FAMILY_NAME").unwrap_or_default(),
        std::env::var("APPIPC_APP_ID").unwrap_or_default(),
        spellcheck::CLSID
    );
    server.run().await;
    elog!("spellcheck-server: no objects left: class object suspended and revoked, exiting");
    Ok(())
}
