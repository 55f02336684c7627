//! Contoso's spell checker, the example of issue 21: a packaged COM server.
//!
//! `Contoso.SpellCheck`'s application `Server` declares, under `[[application.com-server]]`,
//! one exe server (`spellcheck-server`) serving one class: [`CLSID`], ProgID [`PROG_ID`],
//! version-independent ProgID [`VERSION_INDEPENDENT_PROG_ID`]. Its
//! `launch-and-activation-permission` ([`LAUNCH_PERMISSION`]) admits the user's processes
//! (`IU`) and, of the app containers, only `Fabrikam.Writer`'s ([`WRITER_SID`]): a confined
//! client of any other package is refused with `E_ACCESSDENIED` (0x80070005), and
//! `appipc why` says why.
//!
//! A client asks for an object by class (`com::clsid_from_prog_id`, then
//! `com::co_create_instance::<dyn SpellChecker>`). The broker starts the server when none runs
//! — full trust, with the identity of the application that declares the class
//! (Activate-As-Package), with `-Embedding` — and waits for it to register its class object;
//! the server's factory makes one [`Checker`] per activation. [`SpellChecker::check_text`]
//! takes a [`SpellListener`] of the client's as an [`ObjectRef`] and calls it back with each
//! misspelled word. When the last object is released the server exits.

use std::sync::atomic::{AtomicU64, Ordering};

use appipc::rpc::{CallContext, CallResult, Fault, ObjectRef};
use serde::{Deserialize, Serialize};

use crate::elog;

/// The class the server serves (`com:Class@Id`).
pub const CLSID: &str = "da3b939e-4b5d-4a53-b461-868ad388cbec";

/// Its ProgID (`com:Class@ProgId`).
pub const PROG_ID: &str = "Contoso.SpellChecker.1";

/// Its version-independent ProgID (`com:Class@VersionIndependentProgId`), which names
/// [`PROG_ID`], its current version.
pub const VERSION_INDEPENDENT_PROG_ID: &str = "Contoso.SpellChecker";

/// The package family of the server (`Contoso.SpellCheck`, publisher Contoso).
pub const SERVER_FAMILY: &str = "Contoso.SpellCheck_cvnpggrrsm18p";

/// The application whose identity the server carries (the one declaring the class).
pub const SERVER_APP: &str = "Server";

/// The package family of the client the permission admits (`Fabrikam.Writer`).
pub const WRITER_FAMILY: &str = "Fabrikam.Writer_8tkjkmve8mrwr";

/// `Fabrikam.Writer`'s package SID (`DeriveAppContainerSidFromAppContainerName`).
pub const WRITER_SID: &str =
    "S-1-15-2-2160438823-607569865-4004279256-2940757271-1644084980-3701409345-3487159356";

/// The exe server's `launch-and-activation-permission`: all three COM rights (EXECUTE 1,
/// EXECUTE_LOCAL 2, ACTIVATE_LOCAL 8: 11) to the interactive user's processes (the user side)
/// and to `Fabrikam.Writer`'s package SID (the app-container side).
pub const LAUNCH_PERMISSION: &str = "D:(A;;11;;;IU)(A;;11;;;S-1-15-2-2160438823-607569865-4004279256-2940757271-1644084980-3701409345-3487159356)";

/// The words the checker knows, separated by spaces.
pub const DICTIONARY: &str = "\
    a about all an and are as at be been believe but by can check checker class com could \
    dear definitely do for friend from have he hello her his i if in is it letter me my not \
    of on or our package receive received said separate server she so spell spelling that the \
    their there they this to was we weird were what when which will with word words would \
    write writer you your";

/// Whether the dictionary has `word` (lower case).
pub fn known(word: &str) -> bool {
    DICTIONARY.split_whitespace().any(|w| w == word)
}

/// The most suggestions [`SpellChecker::check`] gives for a word.
pub const MAX_SUGGESTIONS: usize = 5;

/// The longest text [`SpellChecker::check_text`] takes, in words.
pub const MAX_WORDS: usize = 1000;

/// `E_INVALIDARG`.
pub const E_INVALIDARG: u32 = 0x8007_0057;

/// A word the dictionary lacks, and what it might have been.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misspelling {
    /// The word as written.
    pub word: String,
    /// Its place in the text (0 for the first word).
    pub position: u32,
    /// Words of the dictionary close to it, best first (at most [`MAX_SUGGESTIONS`]).
    pub suggestions: Vec<String>,
}

/// The serving process as it sees itself: what Activate-As-Package gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its pid (a full-trust server runs in the host's pid namespace).
    pub pid: u32,
    /// Its package family name (`APPIPC_PACKAGE_FAMILY_NAME`).
    pub package_family_name: String,
    /// Its application id (`APPIPC_APP_ID`): the application declaring the class.
    pub app_id: String,
    /// How the broker started it (`APPIPC_ACTIVATION`: `comserver`).
    pub activation: String,
    /// Its arguments: the exe server's `arguments` and `-Embedding`.
    pub arguments: Vec<String>,
    /// The client this object was made for, as the broker attested it to the factory.
    pub created_for: String,
    /// The objects the server has made so far (every activation makes one).
    pub objects_made: u64,
}

/// The spell checker's interface.
#[appipc::interface(uuid = "a882858a-cfdd-4ec0-9550-c63f72c6edd3", version = "1.0")]
pub trait SpellChecker {
    /// The serving process: its pid, identity, activation and arguments.
    async fn server_info(&self, cx: &CallContext) -> CallResult<ServerInfo>;
    /// Suggestions for `word`, best first; empty when the dictionary has it.
    async fn check(&self, cx: &CallContext, word: String) -> CallResult<Vec<String>>;
    /// Checks `text` word by word in the background: calls `listener.on_misspelled` for each
    /// word the dictionary lacks, then `listener.on_done`, and drops its reference. Returns at
    /// once with the number of words (1 to [`MAX_WORDS`], else [`E_INVALIDARG`]).
    async fn check_text(
        &self,
        cx: &CallContext,
        text: String,
        listener: ObjectRef<dyn SpellListener>,
    ) -> CallResult<u32>;
}

/// What a client of [`SpellChecker::check_text`] implements.
#[appipc::interface(uuid = "7ba97670-1d05-4a03-9e84-70c67a495227", version = "1.0")]
pub trait SpellListener {
    /// A misspelled word.
    async fn on_misspelled(&self, cx: &CallContext, misspelling: Misspelling) -> CallResult<()>;
    /// The text is checked: `misspelled` words were reported.
    async fn on_done(&self, cx: &CallContext, misspelled: u32) -> CallResult<()>;
}

/// The words of `text`: runs of letters and apostrophes, lower-cased.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The optimal string alignment distance (Levenshtein with adjacent transpositions).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Suggestions for `word` (lower-cased): empty when the dictionary has it, else the words of
/// the dictionary nearest to it (edit distance, a swap of two neighbours counting one), if at
/// most 2 edits away, alphabetically, at most [`MAX_SUGGESTIONS`].
pub fn suggest(word: &str) -> Vec<String> {
    let word = word.to_lowercase();
    if known(&word) {
        return Vec::new();
    }
    let mut near: Vec<(usize, &str)> = DICTIONARY
        .split_whitespace()
        .map(|w| (distance(&word, w), w))
        .filter(|(d, _)| *d <= 2)
        .collect();
    near.sort();
    let nearest = near.first().map_or(0, |(d, _)| *d);
    near.into_iter()
        .take_while(|(d, _)| *d == nearest)
        .take(MAX_SUGGESTIONS)
        .map(|(_, w)| w.to_owned())
        .collect()
}

/// Objects made in this process.
static MADE: AtomicU64 = AtomicU64::new(0);

/// One object of the class: what the server's factory makes for each activation.
#[derive(Debug)]
pub struct Checker {
    created_for: String,
}

impl Checker {
    /// An object made for `created_for` (a package family name, or "unpackaged").
    pub fn new(created_for: &str) -> Checker {
        let n = MADE.fetch_add(1, Ordering::Relaxed) + 1;
        elog!("spellcheck-server: object {n} made for {created_for}");
        Checker { created_for: created_for.to_owned() }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        elog!("spellcheck-server: the object made for {} was released", self.created_for);
    }
}

/// The package a call came from, as the broker attested it ("unpackaged" when none).
pub fn caller_of(cx: &CallContext) -> String {
    match cx.caller() {
        Some(c) if !c.package_family_name.is_empty() => c.package_family_name.clone(),
        _ => "unpackaged".to_owned(),
    }
}

#[appipc::async_trait]
impl SpellChecker for Checker {
    async fn server_info(&self, _cx: &CallContext) -> CallResult<ServerInfo> {
        let env = |k: &str| std::env::var(k).unwrap_or_default();
        Ok(ServerInfo {
            pid: std::process::id(),
            package_family_name: env("APPIPC_PACKAGE_FAMILY_NAME"),
            app_id: env("APPIPC_APP_ID"),
            activation: env("APPIPC_ACTIVATION"),
            arguments: std::env::args().skip(1).collect(),
            created_for: self.created_for.clone(),
            objects_made: MADE.load(Ordering::Relaxed),
        })
    }

    async fn check(&self, cx: &CallContext, word: String) -> CallResult<Vec<String>> {
        let s = suggest(&word);
        elog!("spellcheck-server: {} checked {word:?}: {s:?}", caller_of(cx));
        Ok(s)
    }

    async fn check_text(
        &self,
        cx: &CallContext,
        text: String,
        listener: ObjectRef<dyn SpellListener>,
    ) -> CallResult<u32> {
        let who = caller_of(cx);
        let words = words(&text);
        if words.is_empty() || words.len() > MAX_WORDS {
            return Err(Fault::new(
                E_INVALIDARG,
                format!("a text of {} words: 1 to {MAX_WORDS}", words.len()),
            ));
        }
        let listener = listener
            .client()
            .map_err(|e| Fault::new(E_INVALIDARG, format!("the listener: {e}")))?;
        let n = u32::try_from(words.len()).unwrap_or(u32::MAX);
        elog!("spellcheck-server: {who} asked to check {n} words");
        tokio::spawn(async move {
            let mut misspelled = 0u32;
            for (i, word) in words.into_iter().enumerate() {
                let suggestions = suggest(&word);
                if known(&word) {
                    continue;
                }
                misspelled += 1;
                let m = Misspelling { word, position: i as u32, suggestions };
                if let Err(e) = listener.on_misspelled(m).await {
                    elog!("spellcheck-server: the listener of {who} is gone: {e}");
                    return;
                }
            }
            if let Err(e) = listener.on_done(misspelled).await {
                elog!("spellcheck-server: the listener of {who} is gone: {e}");
            }
        });
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_names_are_the_manifests() {
        use appipc_model::identity::PublisherId;
        let contoso = PublisherId::from_publisher("CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH");
        let fabrikam = PublisherId::from_publisher("CN=Fabrikam Inc, O=Fabrikam, C=US");
        assert_eq!(SERVER_FAMILY, format!("Contoso.SpellCheck_{contoso}"));
        assert_eq!(WRITER_FAMILY, format!("Fabrikam.Writer_{fabrikam}"));
        assert_eq!(WRITER_SID, appipc_model::sid::appcontainer_sid(WRITER_FAMILY).to_string());
        assert_eq!(LAUNCH_PERMISSION, format!("D:(A;;11;;;IU)(A;;11;;;{WRITER_SID})"));
        let server =
            appipc_model::manifest::parse(include_str!("../../contoso-spellcheck/appipc.toml"))
                .unwrap();
        assert_eq!(server.identity.family_name().as_str(), SERVER_FAMILY);
        let app = &server.applications[0];
        assert_eq!(app.id.as_str(), SERVER_APP);
        let com = &app.com_servers[0];
        let (exe, class) = com.classes().next().unwrap();
        assert_eq!(class.id.to_string(), CLSID);
        assert_eq!(class.prog_id.as_deref(), Some(PROG_ID));
        assert_eq!(class.version_independent_prog_id.as_deref(), Some(VERSION_INDEPENDENT_PROG_ID));
        assert_eq!(exe.launch_and_activation_permission.as_deref(), Some(LAUNCH_PERMISSION));
        assert_eq!(com.resolve_prog_id(VERSION_INDEPENDENT_PROG_ID), Some(class.id));
        assert_eq!(com.resolve_prog_id(PROG_ID), Some(class.id));
        let writer =
            appipc_model::manifest::parse(include_str!("../../fabrikam-writer/appipc.toml"))
                .unwrap();
        assert_eq!(writer.identity.family_name().as_str(), WRITER_FAMILY);
    }

    #[test]
    fn suggestions() {
        assert!(suggest("receive").is_empty());
        assert!(suggest("The").is_empty());
        assert_eq!(suggest("recieve")[0], "receive");
        assert_eq!(suggest("teh"), ["the"]);
        assert_eq!(suggest("leter"), ["letter"]);
        assert_eq!(suggest("wierd")[0], "weird");
        assert!(suggest("xyzzyq").is_empty(), "nothing near");
        assert!(suggest("ot").len() <= MAX_SUGGESTIONS);
        assert_eq!(
            words("Dear friend, I recieved your letter."),
            ["dear", "friend", "i", "recieved", "your", "letter"]
        );
    }

    /// The interface in one process (no broker): a check, the callbacks, the release.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_and_callbacks() {
        use std::time::Duration;
        let c =
            ObjectRef::<dyn SpellChecker>::new(Arc::new(Checker::new("test"))).client().unwrap();
        assert_eq!(c.check("teh".into()).await.unwrap()[0], "the");
        assert_eq!(c.server_info().await.unwrap().created_for, "test");

        enum Event {
            Misspelled(Misspelling),
            Done(u32),
        }
        struct Collect(tokio::sync::mpsc::UnboundedSender<Event>);
        #[appipc::async_trait]
        impl SpellListener for Collect {
            async fn on_misspelled(&self, _cx: &CallContext, m: Misspelling) -> CallResult<()> {
                let _ = self.0.send(Event::Misspelled(m));
                Ok(())
            }
            async fn on_done(&self, _cx: &CallContext, misspelled: u32) -> CallResult<()> {
                let _ = self.0.send(Event::Done(misspelled));
                Ok(())
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let listener = || ObjectRef::new(Arc::new(Collect(tx.clone())) as Arc<dyn SpellListener>);
        let e = c.check_text(" ,. ".into(), listener()).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(E_INVALIDARG), "{e}");
        let listener = listener();
        drop(tx);
        let n = c.check_text("Teh writer recieved a wierd letter".into(), listener).await;
        assert_eq!(n.unwrap(), 6);
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(Event::Misspelled(m))) => got.push((m.position, m.word)),
                Ok(Some(Event::Done(n))) => {
                    assert_eq!(n, 3);
                    break;
                }
                Ok(None) | Err(_) => panic!("no callback within 30 s: {got:?}"),
            }
        }
        assert_eq!(
            got,
            [(0, "teh".to_owned()), (2, "recieved".to_owned()), (4, "wierd".to_owned())]
        );
        // Done, the server dropped the listener: its sender goes, `recv` ends.
        let r = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        assert!(matches!(r, Ok(None)), "the listener was not released");
    }
}
