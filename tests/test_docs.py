"""The README and the docs site (#29): the site builds with ``mkdocs build --strict`` (a broken link
or anchor fails), its generated pages are current, every ```sh block is run by some test, and the
README stays a five-minute read with its two commands and a first upload near the top."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from signer.service import settings
from tests.docblocks import ROOT, blocks, documents, locate

README = ROOT / "README.md"
VARIABLE = re.compile(r"\b(?:SIGNER|AWS|LOCAL)_[A-Z0-9_]*[A-Z0-9]\b")


def test_the_site_builds_strict_so_a_broken_link_fails(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                            capture_output=True, text=True, timeout=300, env={"NO_MKDOCS_2_WARNING": "1",
                                                                              "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr + "\n(mkdocs is in requirements-test.txt: scripts/test.sh installs it)"
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_a_broken_link_does_fail_the_build(tmp_path: Path) -> None:
    """The check above can fail: the same configuration over a copy of docs/ with one bad anchor."""
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(docs)], check=True)
    with (docs / "api.md").open("a", encoding="utf-8") as page:
        page.write("\n[gone](security.md#no-such-section)\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                             "--site-dir", str(tmp_path / "site")], capture_output=True, text=True, timeout=300,
                            env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "no-such-section" in result.stderr, result.stderr


def test_the_nav_names_every_page() -> None:
    """mkdocs.yml's nav is explicit: every page in docs/ is in it (or the lead adds it at merge)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    listed = set(re.findall(r"([a-z0-9_-]+\.md)", nav))
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert pages == listed, (pages - listed, listed - pages)


def test_the_configuration_reference_is_generated_from_the_table() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == settings.markdown(), (
        "docs/configuration.md is stale: .venv/bin/python -m signer.service.settings --markdown > docs/configuration.md")


def test_every_variable_read_anywhere_is_in_the_table() -> None:
    """signer/, scripts/, gunicorn.conf.py and wsgi.py: any SIGNER_*, AWS_* or LOCAL_* name they
    mention is a row (or the _FILE form of one), so the reference and the unknown-name warning
    know it."""
    sources = [*ROOT.joinpath("signer").rglob("*.py"), *ROOT.joinpath("scripts").rglob("*"),
               ROOT / "gunicorn.conf.py", ROOT / "wsgi.py", ROOT / "Dockerfile"]
    read = {name for path in sources if path.is_file()
            for name in VARIABLE.findall(path.read_text(encoding="utf-8", errors="replace"))}
    missing = read - settings.names()
    assert not missing, f"add a row to signer/service/settings.py for: {sorted(missing)}"
    assert settings.KNOWN_VARIABLES == {name for name in settings.names() if name.startswith("SIGNER_")}


def test_a_missing_row_is_caught() -> None:
    """The check above can fail: drop a row and its name is no longer known nor in the reference."""
    without = tuple(s for s in settings.SETTINGS if s.name != "SIGNER_MAX_SIZE")
    assert "SIGNER_MAX_SIZE" not in settings.names(without)
    assert "`SIGNER_MAX_SIZE`" not in settings.markdown(without)
    assert "`SIGNER_MAX_SIZE`" in settings.markdown()


def test_the_api_reference_is_generated_from_openapi() -> None:
    from scripts.api_reference import markdown

    committed = (ROOT / "docs" / "openapi.md").read_text(encoding="utf-8")
    assert committed == markdown(), "docs/openapi.md is stale: .venv/bin/python -m scripts.api_reference > docs/openapi.md"


def _blocks_tests_read() -> set[tuple[str, int]]:
    """Every (document, fence offset) a test reads with doc_block("<document>", "<after>"[, n])."""
    found = set()
    for path in ROOT.joinpath("tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "doc_block":
                args = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
                assert len(args) == len(node.args), f"{path.name}: doc_block with non-constant arguments"
                found.add((args[0], locate(*args)))
    return found


def test_every_sh_block_is_run_by_a_test() -> None:
    """A ```sh block promises it runs as written; an illustration is fenced ```shell."""
    read = _blocks_tests_read()
    unread = [f"{path.relative_to(ROOT)} at line {path.read_text(encoding='utf-8')[:offset].count(chr(10)) + 1}"
              for path in documents() for offset, _ in blocks(path)
              if (str(path.relative_to(ROOT)), offset) not in read]
    assert not unread, f"```sh blocks no test runs (run one with tests/docblocks.doc_block, or fence it ```shell): {unread}"
    assert len(read) >= 6  # the README's two, docs/curl.md's three, doctor: the finder finds them


def test_an_unread_sh_block_is_found(tmp_path: Path) -> None:
    """The check above can fail: a new sh block is a block no doc_block call reads; a shell one is not one."""
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```sh\necho run me\n```\n\n```shell\necho only shown\n```\n", encoding="utf-8")
    assert blocks(page) == [(len("# Page\n\n"), "echo run me\n")]
    assert all(document != "page.md" for document, _ in _blocks_tests_read())


def test_the_library_example_runs() -> None:
    """docs/library.md's Python block, as written (no network: it only signs)."""
    text = (ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    code = blocks(ROOT / "docs" / "library.md", "python")[0][1]
    scope: dict[str, object] = {}
    exec(code, scope)  # noqa: S102 - our own docs' example
    assert str(scope["url"].url).startswith("https://my-bucket.s3.eu-west-1.amazonaws.com/uploads/cat.jpg?")  # type: ignore[attr-defined]
    assert "presign_post" in text


def test_the_readme_is_a_five_minute_read() -> None:
    """At most 250 lines; the two commands within its first 40, a first upload with curl within 120."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, len(text.splitlines())
    line_of = {body: text[:offset].count("\n") + 1 for offset, body in blocks(README)}
    commands = next(line for body, line in line_of.items() if body.startswith("scripts/run.sh"))
    upload = next(line for body, line in line_of.items() if "/v1/presign" in body and "curl -sS -T" in body)
    assert commands <= 40 - 3 and upload <= 120 - 30, (commands, upload)
    assert "docs/configuration.md" in text and "docs/deploying.md" in text  # where to go next


def test_ci_runs_the_readmes_test_command() -> None:
    """.ci/run's last line is the README's second command, so a reader runs what CI runs."""
    readme_commands = [line.split("#")[0].strip() for line in blocks(README)[0][1].splitlines()]
    last = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert last == f"bash {readme_commands[1]}", (last, readme_commands)


def test_the_readmes_relative_links_exist() -> None:
    """mkdocs checks docs/; the README (outside it) is checked here: each relative link is a file."""
    for document in (README, ROOT / "benchmarks" / "README.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text(encoding="utf-8")):
            assert (document.parent / target).exists(), f"{document.relative_to(ROOT)}: {target} does not exist"
