"Leave-one-source-out (lesion_fastai.seg.sources, tools/benchmark_loso.py): bad provenance, the summary's arithmetic, one tiny end-to-end run."
import subprocess, sys
from pathlib import Path
import pandas as pd, pytest

from lesion_fastai.config import LesionDataError
from lesion_fastai.demo import make_demo_set
from lesion_fastai.seg.sources import read_provenance, source_pairs, leave_one_source_out, loso_summary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import benchmark_loso as bl

TINY = dict(epochs=1, sizes=(64,), bs=4, lr=1e-3, pretrained=False)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Twelve demo images of two made-up sources, seven and five"
    d = tmp_path_factory.mktemp('loso')/'data'
    ids = make_demo_set(d, n=12, size=(96, 72))
    pd.DataFrame({'image_id': ids, 'pool': 'A', 'dataset': ['Clinic A (made up, 2026)']*7 + ['Clinic B, resized']*5}
                 ).to_csv(d/'provenance.csv', index=False)
    return d


def test_read_provenance(data):
    src = read_provenance(data)
    assert src.value_counts().to_dict() == {'Clinic A': 7, 'Clinic B': 5}
    assert read_provenance(data, short=False).iloc[0] == 'Clinic A (made up, 2026)'


def test_provenance_errors(data, tmp_path):
    with pytest.raises(LesionDataError, match=r'provenance\.csv: no such file'): read_provenance(tmp_path)
    f = tmp_path/'provenance.csv'
    f.write_text('image_id,pool\nx,A\n')
    with pytest.raises(LesionDataError, match=r'provenance\.csv: no column dataset'): read_provenance(tmp_path)
    f.write_text('name,dataset\nx,PH2\n')
    with pytest.raises(LesionDataError, match=r'provenance\.csv: no column image_id'): read_provenance(tmp_path)
    f.write_text('image_id,dataset\nx,PH2\nx,PH2\n')
    with pytest.raises(LesionDataError, match=r'provenance\.csv: 1 rows without a dataset or with a repeated image_id: x'): read_provenance(tmp_path)


def test_image_without_provenance(data, tmp_path):
    for sub in ('images', 'masks'): (tmp_path/sub).symlink_to(data/sub)
    full = pd.read_csv(data/'provenance.csv')
    full.iloc[:9].to_csv(tmp_path/'provenance.csv', index=False)
    with pytest.raises(LesionDataError) as e: source_pairs(tmp_path)
    msg = str(e.value)
    assert msg.startswith(str(tmp_path/'provenance.csv')) and 'no source for 3 of the 12 images: demo_0009, demo_0010, demo_0011' in msg
    assert '\n' not in msg


def test_source_pairs(data):
    pairs = source_pairs(data)
    assert pairs.columns.tolist() == ['image_id', 'image', 'mask', 'source'] and len(pairs) == 12
    assert pairs.source.tolist() == ['Clinic A']*7 + ['Clinic B']*5


def test_loso_summary():
    t = pd.DataFrame({'source': ['a']*3 + ['b'], 'image_id': list('wxyz'),
                      'threshold_jaccard': [0.9, 0.8, 0., 0.7], 'jaccard': [0.9, 0.8, 0.5, 0.7]})
    s = loso_summary(t)
    assert s.index.tolist() == ['a', 'b', 'pooled', 'mean of sources'] and 'train_minutes' not in s
    assert s.threshold_jaccard.tolist() == [0.5667, 0.7, 0.6, 0.6333]     # pooled 2.4/4, mean of sources (1.7/3 + 0.7)/2
    assert s.jaccard.tolist() == [0.7333, 0.7, 0.725, 0.7167]
    assert s['below_0.65'].tolist() == [0.3333, 0., 0.25, 0.1667]
    assert s.n.tolist() == [3, 1, 4, 2]
    s = loso_summary(t, pd.DataFrame({'source': ['b', 'a'], 'train_minutes': [2., 1.5]}))
    assert s.train_minutes.tolist() == [1.5, 2., 3.5, 1.75]


@pytest.fixture(scope='module')
def run(data, tmp_path_factory):
    "One tiny leave-one-source-out run (two trainings), then a second call on the same folder"
    out, first, second = tmp_path_factory.mktemp('loso')/'run', [], []
    t1 = leave_one_source_out(data, out, log=first.append, **TINY)
    t2 = leave_one_source_out(data, out, log=second.append, **TINY)
    return out, t1, t2, first, second


def test_leave_one_source_out(run):
    out, t1, t2, first, second = run
    assert t1.columns.tolist() == ['source', 'image_id', 'threshold_jaccard', 'jaccard']
    loso = pd.read_csv(out/'loso.csv')
    assert len(loso) == 12 and sorted(loso.image_id) == [f'demo_{i:04d}' for i in range(12)]
    assert loso.groupby('source').size().to_dict() == {'Clinic A': 7, 'Clinic B': 5}
    runs = pd.read_csv(out/'runs.csv')
    assert runs[['source', 'n_train', 'n_test']].values.tolist() == [['Clinic A', 5, 7], ['Clinic B', 7, 5]]
    assert (runs.train_minutes > 0).all()
    for slug in ('clinic-a', 'clinic-b'):
        assert (out/slug/'model'/'config.json').exists() and (out/slug/'pred'/'predictions.csv').exists()
        assert (out/slug/'heldout'/'images').is_dir()
    assert not any('reused' in l for l in first)


def test_finished_model_reused(run):
    out, t1, t2, first, second = run
    assert sum('finished model found, reused (not retrained)' in l for l in second) == 2
    assert not any('epoch' in l or 'pairs:' in l for l in second)               # no training line at all
    pd.testing.assert_frame_equal(t1, t2)
    assert pd.read_csv(out/'runs.csv').train_minutes.notna().all()               # the first training's minutes are kept


def test_unknown_source(data, tmp_path):
    with pytest.raises(ValueError, match=r"unknown sources \['PH2'\]"): leave_one_source_out(data, tmp_path, sources=['PH2'], **TINY)


def test_setting_parser():
    assert bl.setting('loss=ce+dice') == ('loss', 'ce+dice')
    assert bl.setting('colour_constancy=True') == ('colour_constancy', True)
    assert bl.setting('sizes=(128, 256)') == ('sizes', (128, 256))
    with pytest.raises(Exception, match='KEY one of'): bl.setting('colour=True')
    with pytest.raises(Exception, match='KEY one of'): bl.setting('minutes=3')


def test_benchmark_tool(run, data):
    "The tool on a finished run: nothing retrained, the summary printed and written"
    out = run[0]
    res = subprocess.run([sys.executable, str(ROOT/'tools'/'benchmark_loso.py'), '--data', str(data), '--out', str(out),
                          '--sources', 'Clinic B', '--no-tta'], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'reused (not retrained)' in res.stdout and '| source | n | threshold_jaccard | jaccard | below_0.65 | train_minutes |' in res.stdout
    assert '| pooled | 5 |' in res.stdout and 'deviation_pct' in res.stdout
    assert pd.read_csv(out/'summary.csv', index_col=0).index.tolist() == ['Clinic B', 'pooled', 'mean of sources']
    bad = subprocess.run([sys.executable, str(ROOT/'tools'/'benchmark_loso.py'), '--data', str(data), '--out', str(out),
                          '--sources', 'PH2'], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [f"error: unknown sources ['PH2']; the sources are ['Clinic A', 'Clinic B']"]


def test_cli_flags():
    "`--set` settings become `lesion_fastai train` options for --cli"
    assert bl.cli_flags({'loss': 'ce', 'colour_constancy': False, 'min_zoom': 0.6, 'freeze_bn': True}) == [
        '--loss', 'ce', '--no-colour-constancy', '--min-zoom', '0.6', '--freeze-bn']
