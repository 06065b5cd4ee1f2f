"""Upload kinds (signer/service/kinds.py): the file, its defaults, and one-line errors naming file, kind and key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signer.service.config import load_config
from signer.service.errors import ConfigError, NotAllowed, NotFound
from signer.service.kinds import KEYS, PUBLISH_KEYS, reference
from tests.conftest import env_with

AVATAR_AND_DOC = """
[kinds.avatar]
bucket = "avatars"
key_prefix = "avatars/"
max_size = 20480
content_types = ["image/png", "image/jpeg"]
overwrite = "allow"
check_content = true
callers = ["tokens", "anonymous"]

[kinds.doc]
bucket = "docs"
key_prefix = "docs/"
max_size = 102400
content_types = ["application/pdf"]
overwrite = "deny"
content_disposition = "attachment"
"""


def config_with(tmp_path: Path, text: str, **overrides: str | None):
    path = tmp_path / "signer.toml"
    path.write_text(text)
    return load_config(env_with(SIGNER_CONFIG=str(path), **overrides))


def test_without_signer_config_there_is_only_default_built_from_the_environment() -> None:
    config = load_config(env_with())
    assert list(config.kinds.by_name) == ["default"]
    default = config.kinds.default
    assert default.bucket == config.bucket and default.rules == config.rules and default.publish is None
    assert default.callers is None and not default.check_content and default.content_disposition == "inline"


def test_kinds_from_the_file_and_defaults_from_the_environment(tmp_path) -> None:
    config = config_with(tmp_path, AVATAR_AND_DOC, SIGNER_MAX_EXPIRES="600")
    avatar, doc = config.kinds.get("avatar"), config.kinds.get("doc")
    assert avatar.bucket.name == "avatars" and doc.bucket.name == "docs"
    assert avatar.bucket.region == config.bucket.region
    assert avatar.rules.max_size == 20480 and avatar.rules.allowed_content_types == ("image/png", "image/jpeg")
    assert avatar.rules.overwrite == "allow" and doc.rules.overwrite == "deny"
    assert avatar.check_content and not doc.check_content
    assert doc.content_disposition == "attachment" and doc.attachment
    assert avatar.rules.max_expires == 600  # left out: the default kind's
    assert avatar.callers == {"tokens", "anonymous"} and doc.callers == {"tokens", "users", "anonymous"}
    assert [bucket.name for bucket in config.kinds.buckets()] == ["uploads-bucket", "avatars", "docs"]


def test_a_jwt_user_is_one_of_a_kinds_users(tmp_path) -> None:
    """A JWT's user and a gateway's are both the app's users (#27): ``callers`` names them ``users``."""
    config = config_with(tmp_path, AVATAR_AND_DOC)
    avatar, doc = config.kinds.get("avatar"), config.kinds.get("doc")
    assert [doc.allows(via) for via in ("token", "gateway", "jwt", "anonymous")] == [True] * 4
    assert [avatar.allows(via) for via in ("token", "gateway", "jwt", "anonymous")] == [True, False, False, True]


def test_choosing_a_kind(tmp_path) -> None:
    kinds = config_with(tmp_path, AVATAR_AND_DOC).kinds
    assert kinds.choose(None, "gateway").name == "default"
    assert kinds.choose("avatar", "token").name == "avatar"
    with pytest.raises(NotFound, match="'videos'") as found:
        kinds.choose("videos", "token")
    assert found.value.code == "unknown_kind"
    with pytest.raises(NotAllowed) as refused:
        kinds.choose("avatar", "gateway")
    assert refused.value.code == "kind_not_allowed"
    assert kinds.names_for("gateway") == ["default", "doc"]


BAD = [
    ("[kinds.avatar]\nsize = 3\n", "[kinds.avatar] size: unknown key"),
    ("[kinds.avatar]\nmax_size = \"big\"\n", "[kinds.avatar] max_size: must be a integer"),
    ("[kinds.avatar]\nmax_size = 0\n", "[kinds.avatar] max_size: must be between 1"),
    ("[kinds.avatar]\nbucket = \"Bad_Bucket\"\nkey_prefix = \"a/\"\n", "[kinds.avatar] bucket: "),
    ("[kinds.avatar]\nbucket = \"ab\"\nkey_prefix = \"a/\"\n", "[kinds.avatar] bucket: "),
    ("[kinds.avatar]\nkey_prefix = \"/a\"\n", "[kinds.avatar] key_prefix: must end with '/'"),
    ("[kinds.avatar]\nkey_prefix = \"uploads/avatars/\"\n", "[kinds.avatar] key_prefix: 'uploads/avatars/' in bucket"),
    ("[kinds.avatar]\ncontent_types = [\"png\"]\n", "[kinds.avatar] content_types: 'png' is not type/subtype"),
    ("[kinds.avatar]\ncontent_types = \"image/png\"\n", "[kinds.avatar] content_types: must be a list of strings"),
    ("[kinds.avatar]\nmax_expires = 604801\n", "[kinds.avatar] max_expires: must be between 1 and 604800"),
    ("[kinds.avatar]\nmethods = [\"POST\"]\n", "[kinds.avatar] methods: may list only GET"),
    ("[kinds.avatar]\nacls = [\"everyone\"]\n", "[kinds.avatar] acls: may list only"),
    ("[kinds.avatar]\noverwrite = \"maybe\"\n", "[kinds.avatar] overwrite: must be 'allow' or 'deny'"),
    ("[kinds.avatar]\ncheck_content = \"yes\"\n", "[kinds.avatar] check_content: must be a boolean"),
    ("[kinds.avatar]\ncontent_disposition = \"download\"\n", "[kinds.avatar] content_disposition: must be 'inline'"),
    ("[kinds.avatar]\ncallers = [\"admins\"]\n", "[kinds.avatar] callers: may list only tokens"),
    ("[kinds.avatar]\npublish = 3\n", "[kinds.avatar] publish: must be a table"),
    ("[kinds.avatar]\nbucket = \"avatars\"\n[kinds.avatar.publish]\ntemplate = \"{slug}\"\n",
     "[kinds.avatar] publish.bucket: is required"),
    ("[kinds.avatar]\nbucket = \"avatars\"\n[kinds.avatar.publish]\nbucket = \"pub\"\ncdn = 1\n",
     "[kinds.avatar] publish.cdn: unknown key"),
    ("[kinds.avatar]\nbucket = \"avatars\"\n[kinds.avatar.publish]\nbucket = \"pub\"\nurl = \"ftp://x\"\n",
     "[kinds.avatar] publish.url: must be http(s)"),
    ("[kinds.avatar]\nbucket = \"avatars\"\n[kinds.avatar.publish]\nbucket = \"pub\"\ntemplate = \"{nope}\"\n",
     "[kinds.avatar] publish.template: "),
    ("[kinds.avatar]\nbucket = \"avatars\"\nkey_prefix = \"\"\n[kinds.avatar.publish]\nbucket = \"avatars\"\n",
     "[kinds.avatar] publish.bucket: 'public/' in bucket 'avatars' overlaps"),
    ("[kinds.default]\nmax_size = 3\n", "[kinds.default]: the kind 'default' is described by the SIGNER_*"),
    ("[kinds.Avatar]\nmax_size = 3\n", "[kinds.Avatar]: a kind's name must be"),
    ("[buckets.avatar]\n", "unknown table or key 'buckets'"),
    ("[kinds.avatar\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[message for _, message in BAD])
def test_every_error_is_one_line_naming_file_kind_and_key(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError) as error:
        config_with(tmp_path, text)
    line = error.value.message
    assert "\n" not in line
    assert line.startswith(f"{tmp_path / 'signer.toml'}: ")
    assert message in line


def test_a_missing_file_names_the_variable(tmp_path) -> None:
    with pytest.raises(ConfigError, match="SIGNER_CONFIG: cannot read .*nothing.toml"):
        load_config(env_with(SIGNER_CONFIG=str(tmp_path / "nothing.toml")))


def test_check_config_exits_2_with_one_line(tmp_path) -> None:
    path = tmp_path / "signer.toml"
    path.write_text("[kinds.avatar]\noverwrite = \"sometimes\"\n")
    env = {**os.environ, **env_with(SIGNER_CONFIG=str(path))}
    done = subprocess.run([sys.executable, "-m", "signer", "check-config"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"configuration error: {path}: [kinds.avatar] overwrite: must be 'allow' or 'deny', got 'sometimes'"]


def test_the_reference_in_the_docs_is_the_table() -> None:
    text = (Path(__file__).parent.parent / "docs" / "kinds.md").read_text()
    assert reference() in text
    assert {key.name for key in KEYS} == {"bucket", "key_prefix", "max_size", "content_types", "max_expires",
                                          "methods", "acls", "overwrite", "check_content", "content_disposition",
                                          "callers", "publish"}
    assert {key.name for key in PUBLISH_KEYS} == {"bucket", "template", "url", "delete_source", "on_upload"}


def test_the_example_in_the_docs_loads(tmp_path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "kinds.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    config = config_with(tmp_path, example)
    assert sorted(config.kinds.by_name) == ["avatar", "default", "doc"]
    doc = config.kinds.get("doc")
    assert doc.publish is not None and doc.publish.bucket.name == "public-docs" and doc.attachment


def test_check_config_names_the_kinds(tmp_path) -> None:
    path = tmp_path / "signer.toml"
    path.write_text(AVATAR_AND_DOC)
    env = {**os.environ, **env_with(SIGNER_CONFIG=str(path))}
    done = subprocess.run([sys.executable, "-m", "signer", "check-config"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "kind avatar: bucket avatars, key prefix 'avatars/'" in done.stdout
    assert "kind doc: bucket docs, key prefix 'docs/'" in done.stdout
