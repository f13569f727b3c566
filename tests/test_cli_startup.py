"The CLI starts fast (no torch, fastai, pandas or numpy at load) and its light option sets are the library's own."
import subprocess, sys, time
from pathlib import Path
import pytest
import lesion_fastai.cli as cli
from lesion_fastai.script import OPTION_SETS, mirror_differences

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
HEAVY = ('torch', 'fastai', 'segmentation_models_pytorch', 'timm', 'pandas', 'numpy', 'scipy', 'PIL', 'lesion_fastai.data')

def test_cli_imports_nothing_heavy():
    code = f"import sys, lesion_fastai.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == '[]', res.stdout + res.stderr

@pytest.mark.parametrize('argv', [['--help'], ['train', '--help'], ['predict', '--help'], ['classify-train', '--help'],
                                  ['serve', '--help'], ['--version']])
def test_help_is_fast(argv):
    "Each help prints at once (goal < 1 s; asserted < 3 s, since CI machines are shared)"
    t0 = time.perf_counter()
    res = subprocess.run([EXE, *argv], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout, res.stderr
    assert time.perf_counter() - t0 < 3, f"{argv}: {time.perf_counter() - t0:.2f} s"

@pytest.mark.parametrize('opts', OPTION_SETS, ids=lambda o: o.__name__)
def test_option_set_mirrors_its_function(opts):
    "Each light option set has the parameters, defaults and help of the library function it passes them on to"
    assert mirror_differences(opts) == [], opts.mirrors

# (command, library function it calls, parameters whose command-line default differs on purpose)
CALLS = [('cli_demo', 'lesion_fastai.demo.run_demo', ()),
         ('cli_train', 'lesion_fastai.seg.recipe.train_segmenter', ('bs', 'arch')),   # lists: not given, the config's default
         ('cli_train', 'lesion_fastai.seg.ensemble.train_ensemble', ('bs', 'arch', 'folds')),   # no --folds: one model
         ('cli_predict', 'lesion_fastai.seg.predict.load_model', ('runtime',)),   # the command: the fastest engine
         ('cli_predict', 'lesion_fastai.seg.predict.predict_folder', ()),
         ('cli_evaluate', 'lesion_fastai.evaluation.evaluate', ()),
         ('cli_classify_train', 'lesion_fastai.cls.train.train_classifier', ('folds',)),   # no --folds: one member
         ('cli_classify_predict', 'lesion_fastai.cls.predict.classify_folder', ()),
         ('cli_serve', 'lesion_fastai.serve.serve_model', ('runtime',))]

@pytest.mark.parametrize('command,qualname,differ', CALLS, ids=lambda x: x if isinstance(x, str) else '')
def test_cli_defaults_are_the_library_defaults(command, qualname, differ):
    "Every option a command shares with a library function it calls has that function's default"
    import importlib, inspect
    mod, name = qualname.rsplit('.', 1)
    lib = getattr(importlib.import_module(mod), name)
    mine, theirs = inspect.signature(getattr(cli, command)).parameters, inspect.signature(lib).parameters
    for k, p in mine.items():
        if k in theirs and k not in differ and theirs[k].default is not inspect.Parameter.empty:
            assert p.default == theirs[k].default, (command, k)

def test_booleans_read_both_ways():
    "Every boolean option is a --x/--no-x pair whose help ends with its default: on, off, or what the library chooses"
    import argparse, re
    subs = cli.cli_parser()._subparsers._group_actions[0].choices
    flags = [a for sp in subs.values() for a in sp._actions if isinstance(a, argparse.BooleanOptionalAction)]
    assert len(flags) > 10
    for a in flags:
        assert a.option_strings == [f'--{a.dest.replace("_", "-")}', f'--no-{a.dest.replace("_", "-")}'], a.option_strings
        end = r'\(default: (on|off)\)$' if isinstance(a.default, bool) else r'\(default: [^)]+\)$'
        assert re.search(end, a.help), (a.dest, a.help)

def test_python_m_runs_the_cli():
    "`python -m lesion_fastai.cli` is the entry point a launcher starts (`accelerate launch -m lesion_fastai.cli …`)"
    res = subprocess.run([sys.executable, '-m', 'lesion_fastai.cli', '--version'], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith('lesion_fastai '), res.stdout + res.stderr
    assert 'RuntimeWarning' not in res.stderr, res.stderr          # runpy: the module must not be imported twice
