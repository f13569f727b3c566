"Folders written by lesion_fastai 6ed389e (before the learner/, seg/ and cls/ packages) load with today's code and predict the same."
import os
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from PIL import Image

OLD = Path(__file__).parent/'fixtures'/'old_folders'
TIMING = ('seconds', 'minutes', 'time')                          # columns that differ run to run (none today)
pytestmark = pytest.mark.skipif(not (OLD/'VERSION').exists(), reason='fixtures not generated')

@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    "The folders were predicted in float32 (`make_fixtures.py`): predict in float32 here too, on any machine"
    monkeypatch.setenv('LESION_FASTAI_PRECISION', 'fp32')

def _same_csv(new:Path, old:Path):
    a, b = pd.read_csv(new), pd.read_csv(old)
    a, b = (d.drop(columns=[c for c in d.columns if c in TIMING]) for d in (a, b))
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=True)

def _same_masks(new:Path, old:Path):
    olds = sorted(old.glob('*_segmentation.png'))
    assert olds and [f.name for f in olds] == sorted(f.name for f in new.glob('*_segmentation.png'))
    for f in olds: assert (new/f.name).read_bytes() == f.read_bytes(), f.name

@pytest.mark.parametrize('folder', ['model', 'ensemble'])
def test_segmentation(folder, tmp_path):
    "A model folder and a 2-fold ensemble: byte-identical masks, identical predictions.csv"
    from lesion_fastai.seg.predict import predict_folder
    predict_folder(OLD/folder, OLD/'data'/'images', tmp_path/'pred', overlays=False, progress=False)
    _same_masks(tmp_path/'pred', OLD/f'{folder}_pred')
    _same_csv(tmp_path/'pred'/'predictions.csv', OLD/f'{folder}_pred'/'predictions.csv')

def test_classifier(tmp_path):
    "A 2-fold classifier: the same Task 3 CSV and report"
    from lesion_fastai.cls.predict import classify_folder
    classify_folder(OLD/'classifier', OLD/'data'/'images', tmp_path/'pred', masks=OLD/'data'/'masks', progress=False)
    for f in ('predictions.csv', 'report.csv'): _same_csv(tmp_path/'pred'/f, OLD/'classifier_pred'/f)

def test_old_paths_mapped():
    "The old folders name old modules; `read_learner` finds their classes in the new ones"
    from lesion_fastai.learner.folder import read_learner
    learn = read_learner(OLD/'model'/'model.pkl')
    assert type(learn.loss_func).__module__ == 'lesion_fastai.seg.recipe'
