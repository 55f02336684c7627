//! `appipc demo` runs to the end and every step shows the outcome the rules call for: what
//! is allowed happens, what is refused is refused with its reason.

use std::process::Command;

#[test]
fn the_demo_shows_each_decision() {
    // The demo finds the example binaries next to itself; fail with the build hint if absent.
    appipc_testkit::binary("hello-app");
    let out = Command::new(env!("CARGO_BIN_EXE_appipc")).arg("demo").output().expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    for step in 1..=18 {
        assert!(stdout.contains(&format!("== {step}. ")), "step {step} missing:\n{stdout}");
    }
    let expect = [
        // 2: the examples install as signed files, with consent for runFullTrust.
        "ALLOWED  install hello.appipc -> Contoso.Hello_1.0.0.0",
        "asks for runFullTrust",
        // 3: an unsigned folder, another publisher's claim, a tampered file.
        "needs developer mode, which is off",
        "untrusted key: the package is signed by key",
        "bin/hello-app: hash mismatch",
        // 4: who signed what.
        "signature    signed by key",
        // 11: developer mode, and a folder never replaces a signed package.
        "an unsigned folder may not replace it",
        "listed as unsigned (developer mode)",
        // 5: an app container may not deploy packages.
        "install refused: Contoso.Hello_cvnpggrrsm18p (appcontainer) may not deploy packages",
        // 6: the host's files are not in the container.
        "refused: No such file or directory",
        // 8: an unknown app service is reported as Windows reports it.
        "open refused: AppServiceUnavailable (3)",
        // 9: a file token is single use; an undeclared publisher cache folder is refused.
        "is unknown, already redeemed or removed",
        "does not declare the publisher cache folder",
        // 10: a mapping without an entry is refused, with one it is read-only; the event is set
        // by the other package and seen by the creator.
        r"\frame: open refused:",
        "(error 5)",
        r#"\shared: read "a frame for Fabrikam" (writable: false)"#,
        r"\ready: set",
        r"event Local\ready: signalled",
        // 14: a launch for results across publishers, the answer a file token read by the
        // caller; what the broker refuses.
        "photos-app: LaunchUriForResults contoso-pick:photo -> Success (0)",
        "photos-app: picked photo-1.txt for Fabrikam.Photos_",
        "photos-app: read through the token: \"a photo of the lake at dawn",
        "photos-app: without a target: refused, HRESULT 0x80070057",
        "photos-app: contoso-view: for results -> ProtocolUnavailable (2)",
        "is only for results (return-results = \"always\")",
        // 15: two processes of one package talk through its private registry hive; the shipped
        // HKLM key is read-only; the user's own HKCU does not have the value.
        r#"settings-app: HKLM\Software\Contoso\Settings Edition = "Community" [package Registry.reg (read-only)]"#,
        r#"settings-app: notified: Theme = "dark" [package private hive]"#,
        r"Edition refused: ",
        "(error 5)",
        r"in the user's own view",
        "Theme    REG_SZ    dark    [package private hive]",
        // 16: loopback between packages: refused with what is missing, then allowed.
        "loop-client: connect to 127.0.0.1:",
        "failed: Connection refused",
        "REFUSED  connect from Fabrikam.LoopStranger_",
        "has no \"out\" loopback rule naming Contoso.LoopServer_cvnpggrrsm18p",
        "loop-client: connected to 127.0.0.1:",
        "Contoso says hello to Fabrikam.LoopClient_8tkjkmve8mrwr",
        "ALLOWED  connect from Fabrikam.LoopClient_8tkjkmve8mrwr",
        // 17: RPC: the package Contoso's signed descriptor names gets the custom capability,
        // reads the device service through the typed interface and is called back; a package
        // carrying the same descriptor is not granted it, is refused with 5, and why says so.
        "ALLOWED  install fabrikam-sensors.appipc -> Fabrikam.Sensors_1.0.0.0",
        "ALLOWED  grant Contoso.sensorAccess_cvnpggrrsm18p to Fabrikam.Sensors_8tkjkmve8mrwr",
        "sensor-client: connected to contoso.device served by Contoso.Device_cvnpggrrsm18p",
        "(reading 1, served to Fabrikam.Sensors_8tkjkmve8mrwr)",
        "sensor-client: callback from Contoso.Device_cvnpggrrsm18p: temperature",
        "sensor-client: the service released the listener",
        "REFUSED  grant Contoso.sensorAccess_cvnpggrrsm18p to Fabrikam.SensorSpy_8tkjkmve8mrwr",
        "wrong package family name: the descriptor authorizes Fabrikam.Sensors_8tkjkmve8mrwr",
        "sensor-client: connect to contoso.device refused: error 5",
        "REFUSED  rpc.connect endpoint contoso.device from Fabrikam.SensorSpy_8tkjkmve8mrwr",
        "Fabrikam.SensorSpy_8tkjkmve8mrwr declares the capability \
         Contoso.sensorAccess_cvnpggrrsm18p but it was not granted at install",
        // 18: COM: activation starts the server as the declaring application, full trust;
        // a package the permission names calls it and is called back; another is refused
        // with E_ACCESSDENIED and why says so; the last release ends the server.
        "as Contoso.SpellCheck_cvnpggrrsm18p!Server (Activate-As-Package), full trust, \
         APPIPC_ACTIVATION=comserver",
        "made for Fabrikam.Writer_8tkjkmve8mrwr",
        "writer-app: callback: done, 4 misspelled",
        "writer-app: the server released the listener",
        "refused: HRESULT 0x80070005",
        "REFUSED  com.activate class {da3b939e-4b5d-4a53-b461-868ad388cbec} of \
         Contoso.SpellCheck_cvnpggrrsm18p from Fabrikam.Scribbler_8tkjkmve8mrwr",
        "(HRESULT 0x80040154)",
        "suspended and revoked its class and exited",
        "again: a new server, pid",
    ];
    for line in expect {
        assert!(stdout.contains(line), "the demo did not print {line:?}:\n{stdout}");
    }
}
