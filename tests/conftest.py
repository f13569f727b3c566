import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = '''import sys
class _Block:
    "Refuse the packages a process of this test must never import"
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}: raise ImportError(f'{{name}} is blocked by the test')
sys.meta_path.insert(0, _Block())
'''

def blocked_env(d:Path, blocked=('torch', 'fastai'))->dict:
    "The environment of a `lesion_fastai` process in which the packages `blocked` cannot be imported (`d`: its hook)"
    d.mkdir(exist_ok=True)
    (d/'sitecustomize.py').write_text(BLOCKER.format(blocked=tuple(blocked)))
    return {**os.environ, 'PYTHONPATH': os.pathsep.join([str(d), os.environ.get('PYTHONPATH', '')])}

def _isic_dev():
    env = os.environ.get('LESION_ISIC_DEV')
    p = Path(env) if env else ROOT.parent/'shared'/'data'/'isic-dev'
    return p if p.is_dir() else None

@pytest.fixture(scope='session')
def isic_dev():
    "The real development set beside the checkout; tests that need it skip where it is absent"
    p = _isic_dev()
    if p is None: pytest.skip('isic-dev not found (set LESION_ISIC_DEV or place it at ../shared/data/isic-dev)')
    return p

@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    "Keep generated data and caches out of the user's home"
    monkeypatch.setenv('LESION_FASTAI_HOME', str(tmp_path_factory.getbasetemp()/'home'))
    monkeypatch.setenv('LESION_FASTAI_OFFLINE', '1')     # tests never download ImageNet weights (a test that does unsets it)
