"""Harmonisation: categories, divisions (names, codes, old names, zones), text forms, pseudonyms, dictionary."""

from __future__ import annotations

import hmac
import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.config import load_plan
from analysis.dictionary import load_dictionary
from analysis.harmonise import (
    EDUCATION,
    ITEM,
    OCCUPATION,
    SEX,
    _category,
    age_group,
    division_resolver,
    harmonise,
    map_values,
    norm_text,
    to_date,
    to_number,
)
from analysis.ingest import IngestError
from analysis.pseudonymise import KEY_ENV, pseudonym_key, pseudonymise, resp_keys

PLAN = load_plan("zhanjiang")
RESOLVE = division_resolver(PLAN)


def frame(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    return pd.DataFrame({"row": np.arange(n), **cols})


# --- text -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("４５", "45"), ("  男 ", "男"), ("赤坎区\u3000", "赤坎区"), ("a  b", "a b"), ("", None),
    ("N/A", None), (35.0, "35"), (float("nan"), None), (None, None), ("Ｑ０１", "Q01"),
])
def test_norm_text(raw, expected):
    assert norm_text(raw) == expected


# --- categories ---------------------------------------------------------------------------

@pytest.mark.parametrize("column, raw, expected", [
    ("sex", ["男", "女", "1", "2", "male", "Female", "女性", " 男 ", "２", None],
     ["男", "女", "男", "女", "男", "女", "女", "男", "女", None]),
    ("urban_rural", ["城镇", "农村", "城市", "乡村", "urban", "R", "1", "2"],
     ["城镇", "乡村", "城镇", "乡村", "城镇", "乡村", "城镇", "乡村"]),
    ("education", ["小学", "未上过学", "初中", "高中/中专", "中专", "职高", "大学专科", "高职",
                   "大学本科", "硕士", "本科及以上", "5"],
     ["小学及以下", "小学及以下", "初中", "高中", "高中", "高中", "大专", "大专", "本科及以上",
      "本科及以上", "本科及以上", "本科及以上"]),
    ("occupation", ["务农", "工人", "公务员", "教师", "个体户", "在校学生", "退休", "待业", "其它", "7"],
     ["农民", "产业工人", "领导干部和公务员", "专业技术人员", "商业服务业人员", "学生", "离退休人员",
      "无业或失业", "其他", "离退休人员"]),
])
def test_category_variants(column, raw, expected):
    base = {c: ["x"] * len(raw) for c in ("resp_id", "county", "stratum", "psu")}
    base |= {"design_weight": [1.0] * len(raw), "age": [30] * len(raw), "sex": ["男"] * len(raw),
             "urban_rural": ["城镇"] * len(raw), "education": ["初中"] * len(raw),
             "occupation": ["农民"] * len(raw), "q01": ["A"] * len(raw)}
    base[column] = raw
    out = harmonise(frame(**base), PLAN)
    assert [None if pd.isna(v) else v for v in out[column]] == expected


def test_every_contract_label_maps_to_itself():
    d = load_dictionary()
    assert set(EDUCATION.values()) == set(d.allowed("education"))
    assert set(OCCUPATION.values()) == set(d.allowed("occupation"))


def test_unreadable_value_names_row_column_value():
    df = frame(sex=["男", "女", "未知性别", "男"])
    with pytest.raises(IngestError) as e:
        map_values(df, "sex", _category(SEX), "男 / 女")
    msg = str(e.value)
    assert "data row 2" in msg and "sex" in msg and "Chinese text of 4 characters, not shown" in msg and "未知性别" not in msg


def test_unknown_sex_stops_with_expected_values():
    df = frame(resp_id=["1", "2"], county=["赤坎区"] * 2, stratum=["s"] * 2, psu=["p"] * 2,
               design_weight=[1, 1], sex=["男", "X"], age=[30, 30], urban_rural=["城镇"] * 2,
               education=["初中"] * 2, occupation=["农民"] * 2, q01=["A", "B"])
    with pytest.raises(IngestError, match=r"data row 1.*'X'.*expected one of 男 / 女"):
        harmonise(df, PLAN)


@pytest.mark.parametrize("raw, expected", [
    (["35", "４５岁", " 61 ", 52, 52.0, None], [35, 45, 61, 52, 52, None]),
])
def test_age_numbers(raw, expected):
    out = to_number(frame(age=pd.Series(raw, dtype=object)), "age", "age", integer=True)
    assert [None if pd.isna(v) else int(v) for v in out] == expected


@pytest.mark.parametrize("bad", ["abc", "35.5", "三十"])
def test_bad_age_stops(bad):
    with pytest.raises(IngestError, match="expected"):
        to_number(frame(age=pd.Series(["30", bad], dtype=object)), "age", "an integer age", integer=True)


def test_dates():
    out = to_date(frame(d=["2025/5/10", "2025年5月11日", "2025-05-12", "2025.5.13", None]), "d")
    assert [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in out] == [
        "2025-05-10", "2025-05-11", "2025-05-12", "2025-05-13", None]
    with pytest.raises(IngestError):
        to_date(frame(d=["2025-13-40"]), "d")


def test_age_group_boundaries():
    ages = pd.Series([17, 18, 29, 30, 39, 40, 59, 60, 69, 70, None], dtype="Int64")
    got = [None if pd.isna(v) else v for v in age_group(ages)]
    assert got == [None, "18-29", "18-29", "30-39", "30-39", "40-49", "50-59", "60-69", "60-69", None, None]


def test_items_letters_codes_fullwidth():
    f = _category(ITEM)
    assert [f(v) for v in ["a", "Ａ", "1", " d ", "", None]] == ["A", "A", "A", "D", None, None]


# --- divisions ----------------------------------------------------------------------------

def test_every_division_name_alias_and_code():
    for d in PLAN.divisions:
        for v in [d["code"], d["name_zh"], d["name_en"], *d["aliases"], int(d["code"])]:
            assert RESOLVE(v) == d["code"], v


def test_management_zones_go_to_host():
    for z in PLAN.settings.management_zones:
        for v in [z["name_zh"], *z["aliases"]]:
            assert RESOLVE(v) == z["host_code"], v


@pytest.mark.parametrize("raw, code", [
    ("湛江市赤坎区", "440802"), ("广东省湛江市霞山区", "440803"), ("湛江市 遂溪县", "440823"),
    ("赤 坎 区", "440802"), ("４４０８０２", "440802"), ("440802.0", "440802"),
    ("440882101001", "440882"), ("海康县", "440882"), ("徐闻区", "440825"), ("Chikan District", "440802"),
    ("POTOU", "440804"), ("火星", None), ("", None), ("440899", None),
])
def test_division_variants(raw, code):
    assert RESOLVE(raw) == code


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PLAN.divisions), st.sampled_from(["", "湛江市", "广东省湛江市", "湛江"]),
       st.sampled_from(["", " ", "\u3000"]), st.booleans())
def test_decorated_division_names_resolve(d, prefix, pad, fullwidth):
    name = d["name_zh"]
    raw = f"{pad}{prefix}{name}{pad}"
    if fullwidth:
        raw = raw.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    assert RESOLVE(raw) == d["code"]


# --- dictionary ---------------------------------------------------------------------------

@pytest.mark.parametrize("header, name", [
    ("性别", "sex"), ("Sex", "sex"), ("GENDER", "sex"), ("年龄", "age"), ("年龄（周岁）", "age"),
    ("区县", "county"), ("县区", "county"), ("县（市、区）", "county"), ("County", "county"),
    ("文化程度", "education"), ("学历", "education"), ("职业", "occupation"), ("身份证号码", "id_card"),
    ("手机号", "phone"), ("姓名", "name"), ("家庭住址", "address"), ("问卷编号", "resp_id"),
    ("q1", "q01"), ("Q01", "q01"), ("第12题", "q12"), ("ｑ０５", "q05"), ("备注", None), ("1", None),
])
def test_header_aliases(header, name):
    assert load_dictionary().canonical(header) == name


def test_bare_number_under_item_parent():
    d = load_dictionary()
    assert d.canonical("7", parent="题目") == "q07"
    assert d.canonical("7", parent="基本信息") is None


def test_dictionary_documents_every_column():
    d = load_dictionary()
    for col in d.columns:
        assert col["type"] in {"str", "int", "float", "date", "bool"}, col["name"]
        assert col["label_zh"], col["name"]
    raw_cols = set(d.names(stage="raw"))
    assert {"resp_id", "name", "phone", "id_card", "address", "county", "stratum", "psu", "design_weight",
            "sex", "age", "urban_rural", "education", "occupation", "duration_min", "interview_date"} <= raw_cols
    assert set(d.pii) == {"name", "phone", "id_card", "address"}
    assert d.allowed("occupation")[0] == "农民" and len(d.allowed("occupation")) == 9


# --- pseudonymisation -----------------------------------------------------------------------

def test_resp_key_is_hmac_sha256():
    keys = resp_keys(pd.Series(["R001", None, "R002"]), b"secret")
    assert keys[0] == hmac.new(b"secret", b"R001", "sha256").hexdigest()
    assert pd.isna(keys[1])
    assert resp_keys(pd.Series(["R001"]), b"other")[0] != keys[0]


def test_resp_key_long_key_and_unicode_ids():
    key = b"x" * 100  # longer than the SHA-256 block: hashed first, as RFC 2104 says
    ids = pd.Series(["受访者001", "R2"])
    assert resp_keys(ids, key).tolist() == [hmac.new(key, v.encode(), "sha256").hexdigest() for v in ids]


def test_numeric_ids_become_text():
    df = frame(resp_id=[1001.0, 1002.0], county=["赤坎区"] * 2, stratum=["s"] * 2, psu=["p"] * 2,
               design_weight=[1, 1], sex=["男", "女"], age=[30, 30], urban_rural=["城镇"] * 2,
               education=["初中"] * 2, occupation=["农民"] * 2, q01=["A", "B"])
    assert harmonise(df, PLAN)["resp_id"].tolist() == ["1001", "1002"]


def test_pseudonymise_drops_pii_and_id():
    df = pd.DataFrame({"row": [0], "resp_id": ["R1"], "name": ["张三"], "phone": ["138"],
                       "id_card": ["44"], "address": ["x"], "sex": ["男"]})
    out = pseudonymise(df, b"k")
    assert list(out.columns) == ["row", "resp_key", "sex"]


def test_key_from_env_then_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, "from-env")
    assert pseudonym_key(tmp_path / "k") == b"from-env"
    assert not (tmp_path / "k").exists()
    monkeypatch.delenv(KEY_ENV)
    with caplog.at_level(logging.WARNING, logger="analysis.pseudonymise"):
        k1 = pseudonym_key(tmp_path / "k")
    assert "created" in caplog.text and len(k1) == 64
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert pseudonym_key(tmp_path / "k") == k1  # reused, not replaced
