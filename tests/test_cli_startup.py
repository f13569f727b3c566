"The CLI starts fast (no torch, fastai or smp at load) and its light signatures are the library's own."
import subprocess, sys, time
from pathlib import Path
import pytest
from fastcore.docments import docments
import lesion_fastai.cli as cli

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
HEAVY = ('torch', 'fastai', 'segmentation_models_pytorch', 'timm', 'pandas', 'lesion_fastai.data')

def test_cli_imports_nothing_heavy():
    code = f"import sys, lesion_fastai.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == '[]', res.stdout + res.stderr

@pytest.mark.parametrize('argv', [['--help'], ['train', '--help'], ['predict', '--help'], ['classify-train', '--help'], ['--version']])
def test_help_is_fast(argv):
    "Each help prints at once (goal < 1 s; asserted < 3 s, since CI machines are shared)"
    t0 = time.perf_counter()
    res = subprocess.run([EXE, *argv], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout, res.stderr
    assert time.perf_counter() - t0 < 3, f"{argv}: {time.perf_counter() - t0:.2f} s"

LIGHT = ['lesion_fastai.predict.predict_folder', 'lesion_fastai.predict.load_model', 'lesion_fastai.classify.classify_folder',
         'lesion_fastai.classify.train_classifier', 'lesion_fastai.train.train_segmenter', 'lesion_fastai.ensemble.train_ensemble',
         'lesion_fastai.serve.serve_model']

@pytest.mark.parametrize('qualname', LIGHT)
def test_light_signature_is_the_library_one(qualname):
    "The stand-in read from the source has the real function's parameters, defaults and help"
    import importlib, inspect
    mod, name = qualname.rsplit('.', 1)
    real = getattr(importlib.import_module(mod), name)
    light = cli.source_signature(qualname)
    real_f = getattr(real, '__wrapped__', real)
    ps = lambda f: {k: (p.default, p.kind) for k, p in inspect.signature(f).parameters.items() if k != 'kwargs'}
    own = {k for k in inspect.signature(light).parameters if k != 'kwargs'}   # the real one's @delegates expands **kwargs
    assert ps(light) == {k: v for k, v in ps(real).items() if k in own}, qualname
    d_light, d_real = docments(light, returns=False), docments(real, returns=False)
    assert {k: d_light[k] for k in own} == {k: d_real[k] for k in own}, qualname

def test_cli_defaults_are_the_library_defaults():
    "Every option a command takes from a library function or config has that function's default"
    from lesion_fastai.predict import predict_folder
    from lesion_fastai.classify import classify_folder
    import inspect
    for f, lib in [(cli.cli_predict, predict_folder), (cli.cli_classify_predict, classify_folder)]:
        mine, theirs = inspect.signature(f).parameters, inspect.signature(lib).parameters
        for k, p in mine.items():
            if k in theirs and theirs[k].default is not inspect.Parameter.empty: assert p.default == theirs[k].default, (f.__name__, k)

def test_python_m_runs_the_cli():
    "`python -m lesion_fastai.cli` is the entry point a launcher starts (`accelerate launch -m lesion_fastai.cli …`)"
    res = subprocess.run([sys.executable, '-m', 'lesion_fastai.cli', '--version'], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith('lesion_fastai '), res.stdout + res.stderr
    assert 'RuntimeWarning' not in res.stderr, res.stderr          # runpy: the module must not be imported twice
