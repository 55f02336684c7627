"""The Python client against a real broker. Run by crates/appipc-cli/tests/python_client.rs
(which starts the broker on a temporary home and installs Contoso.Services), or by hand:

    APPIPC_RUNTIME_DIR=… APPIPC_TEST_SERVICES=Contoso.Services_cvnpggrrsm18p \\
        python3 -m unittest -v test_appipc

Without APPIPC_RUNTIME_DIR only the encoding tests run.
"""

import mmap
import os
import tempfile
import unittest
import uuid

import appipc

LIVE = bool(os.environ.get("APPIPC_RUNTIME_DIR"))


class Encoding(unittest.TestCase):
    """The vectors of docs/wire.md."""

    def test_the_documented_example(self):
        data = appipc.encode_value_set({
            "Command": appipc.string("Resize"),
            "Width": appipc.int32(640),
            "Thumb": appipc.uint8_array(b"\x89\x50"),
            "Options": appipc.value_set({"Fast": appipc.boolean(True)}),
        })
        self.assertEqual(data.hex(), (
            "a467436f6d6d616e64820c66526573697a65674f7074696f6e7382198000a16446617374"
            "820bf5655468756d62821904014289506557696474688204190280"))
        back = appipc.decode_value_set(data)
        self.assertEqual(back["Width"], (4, 640))
        self.assertEqual(back["Options"], (0x8000, {"Fast": (11, True)}))

    def test_vectors(self):
        for value, hexed in [
            ((0, None), "8200f6"),
            ((2, -300), "820239012b"),
            ((7, 2**64 - 1), "82071bffffffffffffffff"),
            (appipc.single(1.5), "8208fa3fc00000"),
            (appipc.double(-0.1), "8209fbbfb999999999999a"),
            (appipc.string("hé"), "820c6368c3a9"),
            ((16, uuid.UUID("00112233-4455-6677-8899-aabbccddeeff").bytes),
             "821050" + "00112233445566778899aabbccddeeff"),
            ((17, (1, 2)), "821182fa3f800000fa40000000"),
            ((1028, []), "8219040480"),
            ((1036, ["a", ""]), "8219040c82616160"),
        ]:
            data = appipc.encode_value_set({"": value})
            self.assertEqual(data.hex(), "a160" + hexed, value)

    def test_a_request_frame(self):
        # broker.Ping with id 5, and storage.GetPublisherCacheFolder {name: "x"}.
        self.assertEqual(appipc.encode([5, [0, 0, []]]).hex(), "8205830000" + "80")
        self.assertEqual(appipc.encode([5, [5, 0, ["x"]]]).hex(), "8205830500816178")
        self.assertEqual(appipc.decode(bytes.fromhex("8305f682006470617468")),
                         [5, None, [0, "path"]])

    def test_duplicate_keys_are_refused(self):
        with self.assertRaises(ValueError):
            appipc.decode(bytes.fromhex("a2616b01616b02"))


@unittest.skipUnless(LIVE, "no broker (APPIPC_RUNTIME_DIR unset)")
class Broker(unittest.TestCase):
    services = os.environ.get("APPIPC_TEST_SERVICES", "")

    def setUp(self):
        self.s = appipc.Session.connect()

    def tearDown(self):
        self.s.close()

    def test_connect_ping_whoami(self):
        pong = self.s.ping()
        self.assertEqual(pong["protocol"], 2)
        me = self.s.whoami()
        # The broker attests who we are from the kernel: this process, unpackaged.
        self.assertEqual(me["pid"], os.getpid())
        self.assertEqual(me["uid"], os.getuid())
        self.assertEqual(me["trust"], appipc.TrustLevel.UNPACKAGED)
        self.assertIsNone(me["package_family_name"])

    def test_processes(self):
        for p in self.s.list_processes():
            self.assertIn(p["trust"], (0, 1, 2))
            self.assertIn(p["confined"], (True, False))
            self.assertNotIn("_more", p)

    def test_list(self):
        pkgs = {p["family_name"]: p for p in self.s.list_packages()}
        self.assertIn(self.services, pkgs)
        p = pkgs[self.services]
        self.assertEqual(p["name"], "Contoso.Services")
        self.assertEqual(p["applications"][0]["id"], "App")
        self.assertEqual(p["applications"][0]["trust"], appipc.TrustLevel.APP_CONTAINER)
        self.assertTrue(p["full_name"].startswith("Contoso.Services_1.0.0.0_"))
        self.assertTrue(p["log_location"].endswith(self.services + ".log"))

    def test_app_service_open_send_receive(self):
        conn = self.s.open_app_service(self.services, "com.contoso.echo")
        try:
            self.assertGreater(conn.opened["max_message_size"], 0)
            status, reply = conn.send_message({
                "Command": appipc.string("Ping"),
                "n": appipc.int32(3),
                "big": appipc.uint64(2**63 + 1),
                "nested": {"ok": True},
            })
            self.assertEqual(status, 0)  # AppServiceResponseStatus.Success
            self.assertEqual(reply["Command"], (12, "Ping"))
            self.assertEqual(reply["n"], (4, 3))
            self.assertEqual(reply["big"], (7, 2**63 + 1))
            self.assertEqual(reply["nested"], (0x8000, {"ok": (11, True)}))
            # The provider adds who called, as the broker attested it: unpackaged.
            self.assertEqual(reply["caller"], (12, ""))
        finally:
            conn.close()
        with self.assertRaises(appipc.BrokerError) as e:
            self.s.open_app_service(self.services, "com.contoso.nope")
        self.assertEqual(e.exception.code, [3, 3])  # AppServiceUnavailable

    def test_file_token_add_redeem(self):
        with tempfile.NamedTemporaryFile(dir=os.environ.get("APPIPC_TEST_DIR")) as f:
            f.write(b"shared by token")
            f.flush()
            with open(f.name, "rb") as r:
                token = self.s.add_file_token(r)
            self.assertIn(token, [t["token"] for t in self.s.list_file_tokens()])
            info, got = self.s.redeem_file_token(token)
            with got:
                self.assertEqual(got.read(), b"shared by token")
            self.assertFalse(info["writable"])
            self.assertEqual(info["name"], os.path.basename(f.name))
            with self.assertRaises(appipc.BrokerError) as e:
                self.s.redeem_file_token(token)
            self.assertEqual(e.exception.kind, 11)  # TokenInvalid: single use

    def test_named_object_open(self):
        name = f"Session\\python-{os.getpid()}"
        handle, fd = self.s.create_file_mapping(name, 4096)
        self.assertEqual(handle["fd"], appipc.HandleFd.OBJECT)
        with mmap.mmap(fd, 4096) as m:
            m[:5] = b"hello"
        os.close(fd)
        with appipc.Session.connect() as other:
            h, rfd = other.open_named_object(appipc.ObjectType.FILE_MAPPING, name,
                                             appipc.FILE_MAP_READ)
            self.assertEqual(h["fd"], appipc.HandleFd.READ_ONLY)
            self.assertEqual(h["size"], 4096)
            with mmap.mmap(rfd, 4096, prot=mmap.PROT_READ) as m:
                self.assertEqual(m[:5], b"hello")
            os.close(rfd)
            with self.assertRaises(appipc.BrokerError) as e:
                other.open_named_object(appipc.ObjectType.FILE_MAPPING, name, 0)
            self.assertEqual(e.exception.code, [1, 5])  # access mask 0: ERROR_ACCESS_DENIED
            other.close_handle(h["handle"])
        self.s.close_handle(handle["handle"])


if __name__ == "__main__":
    unittest.main()
