import pytest

from helpers import config
from helpers.errors import ConfigError


def test_default_uri_is_a_lite_file_under_data(monkeypatch):
    monkeypatch.delenv("MILVUS_URI", raising=False)
    uri = config.milvus_uri()
    assert uri.endswith("data/milvus_kit.db") and config.is_lite(uri)


def test_a_lite_path_goes_in_milvus_lite_path_not_milvus_uri(monkeypatch, tmp_path):
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "x.db"))  # pymilvus would refuse it at import
    with pytest.raises(ConfigError, match="MILVUS_LITE_PATH"):
        config.milvus_uri()
    monkeypatch.delenv("MILVUS_URI")
    monkeypatch.setenv("MILVUS_LITE_PATH", str(tmp_path / "x.db"))
    assert config.milvus_uri() == str(tmp_path / "x.db")


def test_env_var_and_argument(monkeypatch):
    monkeypatch.setenv("MILVUS_URI", "http://localhost:19530")
    assert config.milvus_uri() == "http://localhost:19530"
    assert not config.is_lite(config.milvus_uri())
    assert config.milvus_uri("https://milvus.example:443") == "https://milvus.example:443"


@pytest.mark.parametrize("bad, words", [("mysql://localhost:3306", "unknown scheme"),
                                        ("data/milvus", "must end in '.db'")])
def test_bad_uri_says_what_to_do(bad, words):
    with pytest.raises(ConfigError, match=words) as err:
        config.milvus_uri(bad)
    assert "http://localhost:19530" in str(err.value) or ".db" in str(err.value)


def test_paths_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CHROMA_PATH", str(tmp_path / "c"))
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path / "k"))
    assert config.chroma_path() == tmp_path / "c"
    assert config.cache_dir() == tmp_path / "k"


def test_shown_paths_do_not_depend_on_the_checkout(tmp_path):
    assert config.shown(config.DATA_DIR / "chroma") == "data/chroma"
    assert config.shown(tmp_path / "m.db") == str(tmp_path / "m.db")
    assert config.shown("http://localhost:19530") == "http://localhost:19530"


def test_scales():
    assert config.scale("smoke").kb_chunks < config.scale("full").kb_chunks
    assert config.scale("full").synthetic_rows == 50_000
    with pytest.raises(ConfigError, match="smoke"):
        config.scale("huge")
