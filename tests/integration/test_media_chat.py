"""``chat``'s media commands against a real server: ``/image`` and ``/file`` send, the receiver
sees what arrived (name, size, dimensions) and ``/save N`` writes the file, never outside the
directory a sender's file name points to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chatclient.tui import ParseError, SaveAttachment, SendFile, format_size, parse_command
from PIL import Image

from tests.integration.test_chat_cli import Terminal, _register, url  # noqa: F401


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/file report.pdf", SendFile("report.pdf")),
        ('/image "my cat.png"', SendFile("my cat.png", image=True)),
        ("/save 12", SaveAttachment(12)),
        ("/save #12 out.pdf", SaveAttachment(12, "out.pdf")),
    ],
)
def test_parse_media_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize("line", ["/file", "/file a b", "/save", "/save x", "/save 1 a b"])
def test_media_command_errors(line: str) -> None:
    with pytest.raises(ParseError, match="usage"):
        parse_command(line)


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 999, 1000, 4_200, 18_000_000, 3 * 10**9)] == [
        "0 B",
        "999 B",
        "1.0 KB",
        "4.2 KB",
        "18.0 MB",
        "3.0 GB",
    ]


async def test_a_terminal_user_sends_an_image_and_a_file_and_the_other_saves_them(
    url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
    for handle, key in keys.items():
        await _register(url, key, handle, handle.title())
    img = tmp_path / "cat.png"
    Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).save(img)
    doc = tmp_path / "notes.txt"
    doc.write_bytes(b"meeting at noon\n" * 100)
    inbox = tmp_path / "bob-files"
    inbox.mkdir()
    monkeypatch.chdir(inbox)
    alice = Terminal(url, keys["alice"]).start()
    bob = Terminal(url, keys["bob"]).start()
    try:
        await bob.wait_for("connected as @bob")
        alice.send("/dm @bob", f"/image {img}", f"/file {doc}")
        m = await bob.wait_for(
            r"^\[@alice\] \d\d:\d\d alice sent an image 'cat\.png' \([\d.]+ KB, 64x48\)  /save (\d+)$"
        )
        f = await bob.wait_for(
            r"^\[@alice\] \d\d:\d\d alice sent a file 'notes\.txt' \(1\.6 KB\)  /save (\d+)$"
        )
        bob.send("/open @alice", f"/save {m.group(1)}", f"/save {f.group(1)} kept.txt")
        await bob.wait_for(rf"^saved #{f.group(1)} to kept\.txt$")
        await bob.wait_for(rf"^saved #{m.group(1)} to cat\.png$")
        assert (inbox / "cat.png").read_bytes() == img.read_bytes()
        assert (inbox / "kept.txt").read_bytes() == doc.read_bytes()
        bob.expected_status = 1  # the file exists: a script with a failed command exits 1
        bob.send(f"/save {m.group(1)}")
        await bob.wait_for(r"cat\.png exists: /save \d+ PATH")
    finally:
        for t in (alice, bob):
            assert await t.close() == t.expected_status
    assert "Traceback" not in alice.text + bob.text


def test_save_never_uses_a_path_from_the_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatclient.cli import _save_target

    monkeypatch.chdir(tmp_path)
    assert _save_target(None, "../../home/u/.bashrc", 3) == Path("bashrc")
    assert _save_target(None, "/etc/passwd", 3) == Path("passwd")
    assert _save_target(None, "..", 4) == Path("attachment-4")
    assert _save_target(str(tmp_path), "a/b.txt", 5) == tmp_path / "b.txt"
