"""A model bundle stored as data for the registry: no pickle, joblib or cloudpickle when it is loaded.

Why: unpickling a file runs whatever code its writer chose (CVE-2024-37056 is that class of hole in MLflow's
sklearn and LightGBM flavours, unpatched by design), so a served model whose bundle is a pickle asks everyone
who serves it to trust every writer of the registry. The training bundles under models/ stay joblib: the
pipeline writes and reads them on one machine. What goes into the registry is written here instead:

- skops.io (the scikit-learn community's secure format): a zip of JSON for the object tree and .npy arrays read
  with allow_pickle=False. LightGBM's boosters are kept as their text model (Booster.__getstate__), the TF-IDF
  vocabularies as JSON, the networks as plain float arrays (models.NetworkRegressor.__getstate__);
- every class the tree may name is checked against SERVED_TYPES before anything is built: a file naming any
  other type (a function, `os.system`, a class of another package) is refused with its names, not loaded;
- the track-record table beside it as parquet (artifacts.records_path), like the training bundle's.
"""

from __future__ import annotations

import io
from pathlib import Path

from anipop.core.artifacts import ModelBundle, records_apart, with_records
from anipop.core.utils import atomic_path
from anipop.modeling.pitch.legacy import PitchRegressor as FormerPitchModel

# every type outside skops' own safe set (builtins, numpy, scipy.sparse, scikit-learn's estimators) that a bundle
# of any anipop model holds; tests/serving/test_served_bundle.py saves one of each model kind through this list
SERVED_TYPES = (
    "anipop.core.artifacts.ModelBundle",
    "anipop.core.config.PitchModelParams",
    "anipop.core.config.TrackRecordParams",
    "anipop.modeling.finetune.FinetunedRegressor",
    "anipop.data.metadata.MetadataEncoder",
    "anipop.modeling.modality.PresenceNeutral",
    "anipop.modeling.modality.PresenceNeutralModel",
    "anipop.modeling.models.LengthBaseline",
    "anipop.modeling.models.MeanBaseline",
    "anipop.modeling.models.NetworkRegressor",
    "anipop.modeling.models.RidgeRegressor",
    "anipop.modeling.models.TfidfPixelBenchmark",
    "anipop.modeling.paper_head.PaperHeadRegressor",
    "anipop.modeling.pitch.characters.CharacterCorrection",
    "anipop.modeling.pitch.characters.CharacterRidge",
    "anipop.modeling.pitch.encoding.PitchEncoding",
    "anipop.modeling.pitch.legacy.PitchRegressor",
    "anipop.modeling.pitch.meta_ridge.MetaRidge",
    "anipop.modeling.pitch.pitch_gbm.PitchGBM",
    "anipop.modeling.pitch.pitch_stack.PitchStack",
    "anipop.modeling.pitch.text_models.EmbeddingNeighbours",
    "anipop.modeling.pitch.text_models.EmbeddingRidge",
    "anipop.modeling.pitch.text_models.TextRidge",
    "anipop.modeling.text_vectorizer.TfidfVectorizer",
    "anipop.modeling.track_records.TrackRecords",
    "collections.OrderedDict",
    "collections.defaultdict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMRegressor",
)
# where the modules of SERVED_TYPES lived before anipop's code moved into folders: a bundle written then names
# its types there, and loading translates them (the old names are no module any more, so none can be trusted)
FORMER_MODULES = {
    "anipop.artifacts": "anipop.core.artifacts",
    "anipop.config": "anipop.core.config",
    "anipop.finetune": "anipop.modeling.finetune",
    "anipop.metadata": "anipop.data.metadata",
    "anipop.modality": "anipop.modeling.modality",
    "anipop.models": "anipop.modeling.models",
    "anipop.paper_head": "anipop.modeling.paper_head",
    "anipop.text_vectorizer": "anipop.modeling.text_vectorizer",
    "anipop.track_records": "anipop.modeling.track_records",
}
# the pitch models' former classes, in either former module: the one class switched by name, whose state loads
# into pitch.legacy and is upgraded to its model's class, and its parts, which kept their state under new names
_FORMER_PITCH_CLASSES = {
    "PitchRegressor": "anipop.modeling.pitch.legacy.PitchRegressor",
    "_CharacterRidge": "anipop.modeling.pitch.characters.CharacterRidge",
    "_EmbeddingNeighbours": "anipop.modeling.pitch.text_models.EmbeddingNeighbours",
    "_EmbeddingRidge": "anipop.modeling.pitch.text_models.EmbeddingRidge",
    "_TextRidge": "anipop.modeling.pitch.text_models.TextRidge",
}
FORMER_TYPES = {f"{module}.{former}": current for module in ("anipop.pitch_models", "anipop.modeling.pitch_models")
                for former, current in _FORMER_PITCH_CLASSES.items()}
_FORMER_MODULE_NAMES = set(FORMER_MODULES) | {former.rsplit(".", 1)[0] for former in FORMER_TYPES}
SERVED_BUNDLE = "model.skops"  # a served predictor folder's bundle (its records: model.records.parquet)


class UntrustedBundle(ValueError):
    """A served bundle naming a type outside SERVED_TYPES: refused before any object is built."""


def save_served_bundle(bundle: ModelBundle, path: str | Path) -> None:
    """Write `bundle` as skops data (and its track-record table as parquet beside it); a bundle holding a type
    that loading would refuse fails here, when it is logged, not later when a server loads it."""
    import skops.io as sio

    path = Path(path)
    with records_apart(bundle, path):  # the track-record table travels as parquet beside the file
        data = sio.dumps(bundle)
    _check_types(data, path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def load_served_bundle(path: str | Path) -> ModelBundle:
    """The bundle at `path`, built only from SERVED_TYPES and arrays read without pickle; anything else fails with
    one line naming the file and what it holds."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    path = Path(path)
    try:
        data = _with_current_module_names(path.read_bytes())
        bundle = sio.loads(data, trusted=list(SERVED_TYPES))  # skops audits every type before it builds anything
        if isinstance(bundle.model, FormerPitchModel):  # registered before each pitch model had its class
            bundle.model = bundle.model.upgrade()
    except UntrustedTypesFoundException as err:
        _check_types(data, path)  # raises UntrustedBundle, the names in one line
        raise ValueError(f"{path.name}: {str(err).splitlines()[0]}") from None
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign file: one line, not a traceback
        raise ValueError(f"{path.name}: not a readable anipop model ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    return with_records(bundle, path, path.name)


def _check_types(data: bytes, path: Path) -> None:
    import skops.io as sio

    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(SERVED_TYPES))
    if untrusted:
        shown = ", ".join(untrusted[:10]) + (f" (+{len(untrusted) - 10} more)" if len(untrusted) > 10 else "")
        raise UntrustedBundle(f"{path.name} names types an anipop model never holds: {shown}; refused without "
                              f"loading it")


def _with_current_module_names(data: bytes) -> bytes:
    """`data` with the types' former names (FORMER_TYPES, then FORMER_MODULES) renamed, rewritten only where one
    occurs: the schema is plain JSON, and the translated names then go through the same audit as any other."""
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema_text = archive.read("schema.json").decode("utf-8")
        if not any(f'"{former}"' in schema_text for former in _FORMER_MODULE_NAMES):
            return data

        def renamed(node: object) -> object:
            if isinstance(node, dict):
                node = {key: renamed(value) for key, value in node.items()}
                module = node.get("__module__")
                if isinstance(module, str):
                    current = FORMER_TYPES.get(f"{module}.{node.get('__class__')}")
                    if current is not None:
                        node["__module__"], node["__class__"] = current.rsplit(".", 1)
                    else:
                        node["__module__"] = FORMER_MODULES.get(module, module)
                return node
            return [renamed(item) for item in node] if isinstance(node, list) else node

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as rewritten:
            for member in archive.infolist():
                content = archive.read(member)
                if member.filename == "schema.json":
                    content = json.dumps(renamed(json.loads(schema_text))).encode("utf-8")
                rewritten.writestr(member, content)
    return out.getvalue()
