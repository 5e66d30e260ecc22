"""Skills: listing, details, files, traversal refused, zips unpacked safely, built-in scripts work."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SKILLS = Path(__file__).resolve().parents[2] / "container_image" / "coderunner_gateway" / "public_skills"


def test_public_skills_listed_and_detailed(gateway):
    c = gateway.client()
    names = {s["name"]: s for s in c.get("/v1/skills").json()["skills"]}
    assert {"pdf-text-replace", "image-crop-rotate"} <= names.keys()
    assert names["pdf-text-replace"]["source"] == "public"
    detail = c.get("/v1/skills/image-crop-rotate").json()
    assert detail["description"].startswith("Crop an image")
    assert "scripts/crop_rotate.py" in detail["files"] and "SKILL.md" in detail["files"]
    assert "--rotate" in detail["instructions"]
    assert detail["metadata"] == {"license": "Apache-2.0"}
    r = c.get("/v1/skills/image-crop-rotate/files/scripts/crop_rotate.py")
    assert r.status_code == 200 and "def main" in r.text
    assert c.get("/v1/skills/nope").json()["error"]["code"] == "skill_not_found"
    assert c.get("/v1/skills/image-crop-rotate/files/nope.txt").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "../pdf-text-replace/SKILL.md",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "scripts/../../../etc/passwd",
    ],
)
def test_traversal_is_refused(gateway, path):
    r = gateway.client().get(f"/v1/skills/image-crop-rotate/files/{path}")
    assert r.status_code in (403, 404)
    assert b"root:" not in r.content


def test_user_skills_zip_and_symlinks(gateway_factory, tmp_path):
    user = tmp_path / "user-skills"
    user.mkdir()
    (user / "linky").mkdir()
    (user / "linky" / "SKILL.md").write_text("---\nname: linky\ndescription: has a bad link\n---\nbody\n")
    (user / "linky" / "secret").symlink_to("/etc/passwd")
    (user / "broken").mkdir()
    (user / "broken" / "SKILL.md").write_text("no frontmatter here\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("zipped/SKILL.md", "---\nname: zipped\ndescription: 'from a zip: ok'\n---\nhello\n")
        zf.writestr("zipped/tool.py", "print('tool')\n")
    (user / "zipped.zip").write_bytes(buf.getvalue())
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    (user / "evil.zip").write_bytes(evil.getvalue())
    linkzip = io.BytesIO()
    with zipfile.ZipFile(linkzip, "w") as zf:
        info = zipfile.ZipInfo("lz/SKILL.md")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    (user / "lz.zip").write_bytes(linkzip.getvalue())

    gw = gateway_factory("--user-skills-dir", str(user), "--pool-size", "0")
    c = gw.client()
    names = {s["name"]: s["source"] for s in c.get("/v1/skills").json()["skills"]}
    assert names["zipped"] == "user" and names["linky"] == "user" and "broken" not in names
    assert c.get("/v1/skills/zipped").json()["description"] == "from a zip: ok"
    assert c.get("/v1/skills/zipped/files/tool.py").text == "print('tool')\n"
    r = c.get("/v1/skills/linky/files/secret")
    assert r.status_code == 403 and b"root:" not in r.content
    assert "secret" not in c.get("/v1/skills/linky").json()["files"]
    assert not (tmp_path / "escaped.txt").exists() and not (user.parent / "escaped.txt").exists()
    assert not (user / "evil").exists() or not any((user / "evil").iterdir())
    assert "lz" not in names


def test_pdf_text_replace_script(tmp_path):
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 24 Tf 72 720 Td (Invoice for ACME Ltd) Tj 0 -30 Td [(Total: ACME) -250 (Ltd)] TJ ET")
    page[NameObject("/Contents")] = writer._add_object(content)
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    with open(src, "wb") as f:
        writer.write(f)
    script = SKILLS / "pdf-text-replace" / "scripts" / "replace_text.py"
    r = subprocess.run(
        [sys.executable, str(script), str(src), str(out), "--find", "ACME", "--replace", "Globex"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "2 replacement(s)" in r.stdout
    text = PdfReader(out).pages[0].extract_text()
    assert "Invoice for Globex Ltd" in text and "ACME" not in text
    r = subprocess.run(
        [sys.executable, str(script), str(src), str(tmp_path / "x.pdf"), "--find", "absent", "--replace", "y"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "no replacements" in r.stderr


def test_image_crop_rotate_script(tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    img = Image.new("RGB", (200, 100), "white")
    img.paste((255, 0, 0), (0, 0, 50, 50))  # a red square top-left
    img.save(src)
    script = SKILLS / "image-crop-rotate" / "scripts" / "crop_rotate.py"
    out = tmp_path / "out.png"
    r = subprocess.run(
        [sys.executable, str(script), str(src), str(out), "--crop", "0,0,50,50"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    cropped = Image.open(out)
    assert cropped.size == (50, 50) and cropped.convert("RGB").getpixel((25, 25)) == (255, 0, 0)
    r = subprocess.run(
        [sys.executable, str(script), str(src), str(out), "--rotate", "90"], capture_output=True, text=True
    )
    assert Image.open(out).size == (100, 200)
    r = subprocess.run(
        [sys.executable, str(script), str(src), str(out), "--crop", "0,0,500,50"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "not a box inside" in r.stderr
    assert os.path.getsize(out) > 0


def test_skill_scripts_run_in_a_session(gateway):
    """What an agent does: read the skill's path, run its script in the sandbox."""
    c = gateway.client()
    path = c.get("/v1/skills/image-crop-rotate").json()["path"]
    code = (
        "from PIL import Image\nImage.new('RGB', (40, 20)).save('a.png')\n"
        f"import subprocess, sys\nsubprocess.run([sys.executable, '{path}/scripts/crop_rotate.py', 'a.png', "
        "'b.png', '--rotate', '90'], check=True)\nprint(Image.open('b.png').size)"
    )
    r = gateway.execute(code)
    assert r["stdout"].endswith("(20, 40)\n"), r
