//! `writer-app [PROG_ID]`: `Fabrikam.Writer`'s app, a confined client of Contoso's packaged COM
//! server. Looks up the class by PROG_ID (`Contoso.SpellChecker` by default: the
//! version-independent ProgID, `CLSIDFromProgID`), creates an object of it
//! (`CoCreateInstance`: the broker starts the server when none runs, Activate-As-Package),
//! prints who serves it, checks a word, has a text checked with a listener of its own that the
//! server calls back with each misspelled word, sees the listener released, and releases the
//! object. The server's launch-and-activation permission admits `Fabrikam.Writer` only of the
//! app containers: the same app in another package is refused with `E_ACCESSDENIED`
//! (0x80070005), which this prints with the broker's reason (exit status 1).

use std::sync::Arc;
use std::time::Duration;

use appipc::Session;
use appipc::com;
use appipc::rpc::{CallContext, CallResult, ObjectRef};
use appipc_examples::elog;
use appipc_examples::spellcheck::{self, Misspelling, SpellChecker, SpellListener};

/// The text the app has checked.
const TEXT: &str = "Dear friend, I recieved your leter. Teh spelling checker is wierd.";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            elog!("writer-app: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// What the server calls back with.
enum Event {
    Misspelled(String, Misspelling),
    Done(u32),
}

/// Called back by the server: hands each event, and who sent it, to `run`.
struct Listener(tokio::sync::mpsc::UnboundedSender<Event>);

/// The caller of a callback: the server this client was connected to, as the broker attested.
fn from(cx: &CallContext) -> String {
    cx.server().map(|s| s.server_package_family_name.clone()).unwrap_or_default()
}

#[appipc::async_trait]
impl SpellListener for Listener {
    async fn on_misspelled(&self, cx: &CallContext, m: Misspelling) -> CallResult<()> {
        let _ = self.0.send(Event::Misspelled(from(cx), m));
        Ok(())
    }

    async fn on_done(&self, _cx: &CallContext, misspelled: u32) -> CallResult<()> {
        let _ = self.0.send(Event::Done(misspelled));
        Ok(())
    }
}

/// An error as its HRESULT (`0x8…`) or Win32 code.
fn code(e: &appipc::Error) -> String {
    match (e.hresult(), e.win32_code()) {
        (Some(h), _) => format!("HRESULT {h:#010X}"),
        (None, Some(c)) => format!("error {c}"),
        (None, None) => "no code".to_owned(),
    }
}

async fn run() -> appipc::Result<std::process::ExitCode> {
    let prog_id =
        std::env::args().nth(1).unwrap_or_else(|| spellcheck::VERSION_INDEPENDENT_PROG_ID.into());
    let session = Session::connect().await?;
    let clsid = match com::clsid_from_prog_id(&session, &prog_id).await {
        Ok(c) => c,
        Err(e) => {
            println!("writer-app: CLSIDFromProgID({prog_id}) failed: {}: {e}", code(&e));
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    println!("writer-app: CLSIDFromProgID({prog_id}) = {{{clsid}}}");
    let object = match com::co_create_instance_with_info::<dyn SpellChecker>(&session, &clsid).await
    {
        Ok((object, server)) => {
            // The server as the broker attests it (its pid is 0 to an app container, whose pid
            // namespace is its own).
            println!(
                "writer-app: CoCreateInstance({{{clsid}}}): an object served by {}!{}",
                server.server_package_family_name, server.server_app_id
            );
            object
        }
        Err(e) => {
            // The code, and the broker's reason (also in `appipc why`).
            println!("writer-app: CoCreateInstance({{{clsid}}}) refused: {}", code(&e));
            match &e {
                appipc::Error::Com { message, .. } => println!("writer-app: reason: {message}"),
                other => println!("writer-app: reason: {other}"),
            }
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    // A reference bound to the interface: its proxy.
    let checker = object.client()?;
    // The server as it sees itself.
    let info = checker.server_info().await?;
    println!(
        "writer-app: the server: pid {}, {}!{}, activation {:?}, arguments {:?}, object {} made for {}",
        info.pid,
        info.package_family_name,
        info.app_id,
        info.activation,
        info.arguments,
        info.objects_made,
        info.created_for
    );
    for word in ["receive", "recieve"] {
        let s = checker.check(word.into()).await?;
        if s.is_empty() {
            println!("writer-app: check {word:?}: spelled right");
        } else {
            println!("writer-app: check {word:?}: did you mean {}?", s.join(", "));
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = ObjectRef::<dyn SpellListener>::new(Arc::new(Listener(tx)));
    let n = checker.check_text(TEXT.into(), listener).await?;
    println!("writer-app: check_text: {n} words of {TEXT:?}");
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(Event::Misspelled(from, m))) => println!(
                "writer-app: callback from {from}: word {} {:?}: {}",
                m.position,
                m.word,
                if m.suggestions.is_empty() {
                    "no suggestion".to_owned()
                } else {
                    format!("did you mean {}?", m.suggestions.join(", "))
                }
            ),
            Ok(Some(Event::Done(k))) => {
                println!("writer-app: callback: done, {k} misspelled");
                break;
            }
            Ok(None) | Err(_) => {
                println!("writer-app: no callback within 30 s");
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
    }
    // Done, the server drops its reference: the listener's channel closes and this process
    // releases the listener (and with it the only sender: `recv` ends).
    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        Ok(None) => println!("writer-app: the server released the listener"),
        Ok(Some(_)) => println!("writer-app: a callback past the end"),
        Err(_) => {
            println!("writer-app: the server kept the listener past 30 s");
            return Ok(std::process::ExitCode::FAILURE);
        }
    }
    drop(checker);
    println!("writer-app: released the spell checker");
    Ok(std::process::ExitCode::SUCCESS)
}
