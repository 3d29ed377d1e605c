"""Golden examples: short texts whose analysis any careful reader agrees on.

The demo's events (examples/events.jsonl, `make demo`) plus short Chinese and English news,
reviews and posts written for this test. Each case states only what is beyond dispute:

- ``sentiment``: the labels a reader would accept (a factual news item may be neutral or
  positive, never negative; a mixed review is left unchecked);
- ``entities``: (accepted texts, type) pairs that must be found, and strings that must
  never be an entity (``西湖步行``: the place is 西湖, 步行 is the walk);
- ``not_keywords``: fragments that must never be a keyword: phrases cut after a verb, a
  particle, an adverb or a number word ("人员参与", "refund took six").

Every keyword of every case is also checked for the shape of a whole term: it neither
starts nor ends with a function word, an aspect particle or a number word.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest

from analyzers.config import PipelineConfig
from analyzers.factory import build_pipeline
from analyzers.pipeline import AnalysisOutput, AnalysisRequest
from analyzers.segmentation import tag

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "events.jsonl"

POS = frozenset({"positive"})
NEG = frozenset({"negative"})
# Plain factual news: neutral or weakly positive, never negative.
NEWS = frozenset({"neutral", "positive"})
# Bad news told plainly: negative or neutral, never positive.
BAD_NEWS = frozenset({"neutral", "negative"})

EntitySpec = tuple[tuple[str, ...], str]


@dataclass(frozen=True, slots=True)
class Golden:
    id: str
    text: str
    language: str  # "mixed" for Chinese text with English words also accepts "zh"
    sentiment: frozenset[str] | None = None
    entities: tuple[EntitySpec, ...] = ()
    not_entities: tuple[str, ...] = ()
    not_keywords: tuple[str, ...] = ()
    # At least one of these is a keyword or part of one (the text's obvious topic).
    keywords: tuple[str, ...] = ()


def ent(text: str, type_: str, *also: str) -> EntitySpec:
    """An entity that must be found: ``text`` (or one of ``also``) with type ``type_``."""
    return ((text, *also), type_)


# The demo's examples: the texts come from examples/events.jsonl (read below).
DEMO: dict[str, Golden] = {
    g.id: g
    for g in (
        Golden(
            "zh-001",
            "",
            "zh",
            POS,
            entities=(ent("故宫博物院", "LOC", "故宫"),),
            not_keywords=("一去", "朋友去", "值得一去"),
            keywords=("故宫",),
        ),
        Golden(
            "zh-002",
            "",
            "zh",
            POS,
            entities=(ent("西湖", "LOC"),),
            not_entities=("西湖步行",),
            not_keywords=("西湖步行", "还会再来", "步行十分钟"),
        ),
        Golden(
            "zh-003",
            "",
            "zh",
            NEG,
            not_keywords=("饭菜全凉", "全凉", "一个半", "再也不点"),
        ),
        Golden(
            "zh-004",
            "",
            "zh",
            NEWS,
            entities=(ent("新华社", "ORG"), ent("北京", "LOC"), ent("国务院", "ORG")),
            not_keywords=("作政府", "有效提升"),
        ),
        Golden(
            "zh-005",
            "",
            "zh",
            frozenset({"negative", "neutral"}),
            not_keywords=("性价比不算", "不算", "还可以"),
        ),
        Golden(
            "zh-006",
            "",
            "zh",
            NEWS,
            entities=(
                ent("阿里巴巴集团", "ORG", "阿里巴巴"),
                ent("杭州", "LOC"),
                ent("清华大学", "ORG"),
                ent("浙江大学", "ORG"),
            ),
            not_keywords=("人员参与", "杭州发布", "发布了"),
            keywords=("人工智能",),
        ),
        Golden(
            "en-001",
            "",
            "en",
            POS,
            entities=(ent("Central Park", "LOC"),),
            not_keywords=("location near central", "near central", "could not"),
            keywords=("hotel",),
        ),
        Golden(
            "en-002",
            "",
            "en",
            NEG,
            not_keywords=(
                "refund took six",
                "customer support never",
                "package arrived broken",
                "took six",
                "six weeks",
            ),
        ),
        Golden(
            "en-003",
            "",
            "en",
            NEWS,
            entities=(
                ent("Microsoft", "ORG"),
                ent("London", "LOC"),
                ent("Satya Nadella", "PER"),
            ),
            not_keywords=("microsoft announced", "tuesday", "next two years", "hire 200"),
            keywords=("research lab", "climate"),
        ),
        Golden(
            "en-004",
            "",
            "en",
            frozenset({"positive", "neutral"}),
            not_keywords=("finished reading", "chapters drag", "worth"),
        ),
        Golden(
            "mix-001",
            "",
            "mixed",
            frozenset({"negative", "neutral"}),
            not_keywords=("价格太贵", "太贵", "很快"),
        ),
    )
}


def _demo_cases() -> list[Golden]:
    cases = []
    for line in EXAMPLES.read_bytes().splitlines():
        if line.strip():
            event = orjson.loads(line)
            cases.append(replace(DEMO[event["id"]], text=event["text"]))
    return cases


WRITTEN: tuple[Golden, ...] = (
    # ---- Chinese news
    Golden(
        "zh-news-01",
        "国家统计局今天发布数据，一季度国内生产总值同比增长5.3%。",
        "zh",
        NEWS,
        entities=(ent("国家统计局", "ORG"),),
        not_keywords=("今天发布", "统计局今天", "同比增长5.3%"),
    ),
    Golden(
        "zh-news-02",
        "上海将在浦东新区建设一座新的国际会展中心，预计明年年底完工。",
        "zh",
        NEWS,
        entities=(ent("上海", "LOC"), ent("浦东新区", "LOC", "浦东")),
        not_keywords=("预计明年", "年底完工", "一座"),
    ),
    Golden(
        "zh-news-03",
        "华为公司在深圳举行新品发布会，推出了多款智能手表。",
        "zh",
        NEWS,
        entities=(ent("华为公司", "ORG", "华为"), ent("深圳", "LOC")),
        not_keywords=("深圳举行", "推出了", "多款", "华为公司在"),
        keywords=("智能手表", "发布会"),
    ),
    Golden(
        "zh-news-04",
        "李明在北京大学读完博士后，回到成都开了一家咖啡馆。",
        "zh",
        entities=(ent("李明", "PER"), ent("北京大学", "ORG"), ent("成都", "LOC")),
        not_keywords=("成都开", "一家", "读完"),
    ),
    Golden(
        "zh-news-05",
        "暴雨导致广州多条地铁线路停运，数万名乘客出行受到影响。",
        "zh",
        BAD_NEWS,
        entities=(ent("广州", "LOC"),),
        not_keywords=("数万名", "多条", "受到影响"),
    ),
    Golden(
        "zh-news-06",
        "中国女排以3比0战胜日本队，夺得本届亚洲杯冠军。",
        "zh",
        POS,
        not_keywords=("3比0", "比0", "战胜日本"),
    ),
    Golden(
        "zh-news-07",
        "教育部表示，今年高校毕业生人数预计达到1179万人。",
        "zh",
        NEWS,
        entities=(ent("教育部", "ORG"),),
        not_keywords=("预计达到", "教育部表示"),
        keywords=("毕业生",),
    ),
    Golden(
        "zh-news-08",
        "张伟当选为杭州市新一任市长，他表示将继续推进城市更新。",
        "zh",
        NEWS,
        entities=(ent("张伟", "PER"), ent("杭州市", "LOC", "杭州")),
        not_keywords=("当选为", "继续推进", "他表示"),
    ),
    Golden(
        "zh-news-09",
        "腾讯与京东签署战略合作协议，双方将在物流和支付领域展开合作。",
        "zh",
        NEWS,
        entities=(ent("腾讯", "ORG"), ent("京东", "ORG")),
        not_keywords=("签署战略", "展开合作", "双方将"),
        keywords=("合作协议", "战略合作"),
    ),
    Golden(
        "zh-news-10",
        "长江流域入汛以来降雨偏多，武汉水位持续上涨。",
        "zh",
        BAD_NEWS,
        entities=(ent("长江", "LOC", "长江流域"), ent("武汉", "LOC")),
        not_keywords=("持续上涨", "降雨偏多"),
    ),
    # ---- Chinese reviews
    Golden(
        "zh-review-01",
        "这家餐厅的菜味道很好，服务也周到，价格实惠，强烈推荐！",
        "zh",
        POS,
        not_keywords=("强烈推荐", "味道很好", "这家"),
    ),
    Golden(
        "zh-review-02",
        "房间太小了，隔音很差，晚上根本睡不着，不会再住了。",
        "zh",
        NEG,
        not_keywords=("睡不着", "再住", "房间太小", "根本"),
    ),
    Golden(
        "zh-review-03",
        "快递第二天就到了，包装完好，东西和描述一致，很满意。",
        "zh",
        POS,
        not_keywords=("第二天就", "就到", "很满意"),
    ),
    Golden(
        "zh-review-04",
        "衣服质量太差，洗了一次就掉色，客服还不理人。",
        "zh",
        NEG,
        not_keywords=("洗了一次", "一次", "质量太差", "不理人"),
    ),
    Golden(
        "zh-review-05",
        "屏幕很清晰，运行速度快，就是电池不太耐用。",
        "zh",
        not_keywords=("不太耐用", "电池不太", "速度快"),
    ),
    Golden(
        "zh-review-06",
        "等了四十分钟才上菜，而且菜是凉的，太失望了。",
        "zh",
        NEG,
        not_keywords=("四十分钟", "才上菜", "太失望"),
    ),
    Golden(
        "zh-review-07",
        "老师讲得非常清楚，课程内容很实用，学到了很多。",
        "zh",
        POS,
        not_keywords=("讲得", "学到", "很多"),
    ),
    Golden(
        "zh-review-08",
        "耳机音质不错，佩戴也舒服，这个价位很值。",
        "zh",
        POS,
        not_keywords=("音质不错", "很值", "这个价位"),
    ),
    Golden(
        "zh-review-09",
        "产品和图片完全不一样，做工粗糙，申请退货一直没人处理。",
        "zh",
        NEG,
        not_keywords=("没人处理", "一直没人", "完全不一样"),
    ),
    Golden(
        "zh-review-10",
        "酒店早餐很丰富，前台服务很热情，离地铁站也很近。",
        "zh",
        POS,
        not_keywords=("早餐很丰富", "很近", "离地铁站"),
    ),
    # ---- Chinese posts
    Golden(
        "zh-post-01",
        "周末带孩子去迪士尼乐园玩了一天，孩子开心得不得了！",
        "zh",
        POS,
        not_keywords=("玩了一天", "一天", "不得了"),
    ),
    Golden(
        "zh-post-02",
        "今天加班到十一点，地铁都停了，好累。",
        "zh",
        NEG,
        not_keywords=("十一点", "加班到", "好累"),
    ),
    Golden(
        "zh-post-03",
        "终于拿到驾照了，太开心了！",
        "zh",
        POS,
        not_keywords=("终于拿到", "拿到驾照", "太开心"),
    ),
    Golden(
        "zh-post-04",
        "刚看完《流浪地球》，特效太震撼了，强烈推荐大家去看。",
        "zh",
        POS,
        not_keywords=("刚看完", "去看", "特效太震撼"),
    ),
    Golden(
        "zh-post-05",
        "手机又摔坏了，修一次要八百块，心疼。",
        "zh",
        NEG,
        not_keywords=("八百块", "摔坏", "修一次"),
    ),
    Golden(
        "zh-post-06",
        "王小明在北京马拉松跑出了个人最好成绩，太厉害了！",
        "zh",
        POS,
        entities=(ent("王小明", "PER"),),
        not_keywords=("跑出", "马拉松跑", "太厉害"),
    ),
    # ---- English news
    Golden(
        "en-news-01",
        "Apple will open a new store in Berlin next month, the company said on Monday.",
        "en",
        NEWS,
        entities=(ent("Apple", "ORG"), ent("Berlin", "LOC")),
        not_keywords=("monday", "next month", "company said", "open"),
    ),
    Golden(
        "en-news-02",
        "Angela Merkel met Emmanuel Macron in Paris to discuss the European budget.",
        "en",
        NEWS,
        entities=(ent("Angela Merkel", "PER"), ent("Emmanuel Macron", "PER"), ent("Paris", "LOC")),
        not_keywords=("merkel met", "met emmanuel", "discuss"),
        keywords=("budget",),
    ),
    Golden(
        "en-news-03",
        "Heavy flooding forced thousands of residents in Texas to leave their homes on Sunday.",
        "en",
        BAD_NEWS,
        entities=(ent("Texas", "LOC"),),
        not_keywords=("flooding forced thousands", "forced thousands", "thousands", "sunday"),
    ),
    Golden(
        "en-news-04",
        "Amazon reported record quarterly profits, and its shares rose 8 percent in early trading.",
        "en",
        NEWS,
        entities=(ent("Amazon", "ORG"),),
        not_keywords=("amazon reported", "shares rose", "8 percent", "rose"),
    ),
    Golden(
        "en-news-05",
        "The United Nations warned that the drought in Somalia could leave two million people "
        "without food.",
        "en",
        BAD_NEWS,
        entities=(ent("United Nations", "ORG"), ent("Somalia", "LOC")),
        not_keywords=("two million", "could leave", "nations warned"),
    ),
    Golden(
        "en-news-06",
        "Toyota recalled 50,000 cars in Japan because of a faulty brake sensor.",
        "en",
        BAD_NEWS,
        entities=(ent("Toyota", "ORG"), ent("Japan", "LOC")),
        not_keywords=("toyota recalled", "recalled", "50,000"),
        keywords=("brake sensor",),
    ),
    Golden(
        "en-news-07",
        "Google and Samsung signed a patent agreement in Seoul on Wednesday.",
        "en",
        NEWS,
        entities=(ent("Google", "ORG"), ent("Samsung", "ORG"), ent("Seoul", "LOC")),
        not_keywords=("wednesday", "samsung signed", "signed"),
    ),
    Golden(
        "en-news-08",
        "Barack Obama visited a school in Chicago and spoke about education reform.",
        "en",
        NEWS,
        entities=(ent("Barack Obama", "PER"), ent("Chicago", "LOC")),
        not_keywords=("obama visited", "visited", "spoke"),
        keywords=("education reform",),
    ),
    # ---- English reviews
    Golden(
        "en-review-01",
        "The pasta was cold and the waiter was rude. We will not come back.",
        "en",
        NEG,
        not_keywords=("come back", "waiter was rude", "will not"),
    ),
    Golden(
        "en-review-02",
        "Great battery life and a bright screen. I love this laptop.",
        "en",
        POS,
        not_keywords=("love", "love this laptop", "great battery life and"),
        keywords=("battery", "screen"),
    ),
    Golden(
        "en-review-03",
        "The shoes fell apart after two weeks. Total waste of money.",
        "en",
        NEG,
        not_keywords=("two weeks", "fell apart", "shoes fell"),
    ),
    Golden(
        "en-review-04",
        "Fast shipping, easy setup, and the sound quality is amazing.",
        "en",
        POS,
        not_keywords=("quality is amazing", "is amazing"),
    ),
    Golden(
        "en-review-05",
        "The movie was boring and far too long; I fell asleep halfway through.",
        "en",
        NEG,
        not_keywords=("fell asleep", "halfway", "far too long"),
    ),
    Golden(
        "en-review-06",
        "Excellent customer service: they replaced my broken headphones within three days.",
        "en",
        POS,
        not_keywords=("three days", "within three", "replaced"),
    ),
    Golden(
        "en-review-07",
        "The app keeps crashing every time I open it. Very frustrating.",
        "en",
        NEG,
        not_keywords=("keeps crashing", "every time", "app keeps crashing"),
    ),
    Golden(
        "en-review-08",
        "Comfortable seats, friendly crew, and the flight landed early.",
        "en",
        POS,
        not_keywords=("landed early", "flight landed", "flight landed early"),
    ),
    # ---- English posts
    Golden(
        "en-post-01",
        "Just got back from a week in Lisbon. The food was incredible!",
        "en",
        POS,
        entities=(ent("Lisbon", "LOC"),),
        not_keywords=("got back", "week", "food was incredible"),
    ),
    Golden(
        "en-post-02",
        "My train was delayed again this morning. Third time this week.",
        "en",
        NEG,
        not_keywords=("this morning", "third time", "delayed"),
    ),
    Golden(
        "en-post-03",
        "Finally finished my first marathon in Boston today!",
        "en",
        POS,
        entities=(ent("Boston", "LOC"),),
        not_keywords=("finally finished", "today", "first marathon in"),
    ),
    # ---- mixed
    Golden(
        "mix-02",
        "用了一周的 MacBook Pro，屏幕非常好，但是续航没有宣传的那么长。",
        "zh",
        not_keywords=("一周", "用了一周", "非常好"),
    ),
    Golden(
        "mix-03",
        "今天在 Starbucks 开会，WiFi 太慢了，真受不了。",
        "mixed",
        NEG,
        not_keywords=("太慢", "受不了", "真受不了"),
    ),
)

CASES: tuple[Golden, ...] = (*_demo_cases(), *WRITTEN)
IDS = [c.id for c in CASES]

# A keyword never starts or ends with a function word, an aspect particle, an adverb or a
# number word: such a phrase is a fragment of a sentence, not a term. Chinese keywords are
# judged by the dictionary tags of their words (characters alone are ambiguous: 地 starts
# 地铁, 都 ends 成都).
ZH_BAD_FIRST = frozenset("ul uz ug uj ud uv u p c r d m mq q y e".split())
ZH_BAD_LAST = ZH_BAD_FIRST | {"f", "t"}
EN_FUNCTION = frozenset(
    (
        "a an the this that these those my your his her its our their and or but nor so "
        "of in on at to for from by with near about after before over under into onto "
        "is are was were be been being am will would can could shall should may might must "
        "do does did have has had not no never very too also just only again always "
        "one two three four five six seven eight nine ten hundred thousand million billion "
        "i we you he she it they me us him them"
    ).split()
)


@pytest.fixture(scope="module")
def outputs() -> dict[str, AnalysisOutput]:
    pipeline = build_pipeline(PipelineConfig())
    results = pipeline.analyze([AnalysisRequest(c.text) for c in CASES])
    return {c.id: out for c, out in zip(CASES, results, strict=True)}


def _case(case: Golden) -> object:
    return pytest.param(case, id=case.id)


def test_cases_are_many_and_distinct() -> None:
    assert len(WRITTEN) >= 40
    assert len(set(IDS)) == len(IDS)
    assert len({c.text for c in CASES}) == len(CASES)
    assert {c.id for c in CASES} >= set(DEMO)


@pytest.mark.parametrize("case", [_case(c) for c in CASES])
def test_language(case: Golden, outputs: dict[str, AnalysisOutput]) -> None:
    accepted = {case.language, "zh"} if case.language == "mixed" else {case.language}
    assert outputs[case.id].language in accepted


@pytest.mark.parametrize("case", [_case(c) for c in CASES if c.sentiment is not None])
def test_sentiment(case: Golden, outputs: dict[str, AnalysisOutput]) -> None:
    sentiment = outputs[case.id].sentiment
    assert sentiment is not None
    assert case.sentiment is not None
    assert sentiment.label in case.sentiment, (case.text, sentiment)


@pytest.mark.parametrize("case", [_case(c) for c in CASES if c.entities or c.not_entities])
def test_entities(case: Golden, outputs: dict[str, AnalysisOutput]) -> None:
    found = outputs[case.id].entities or []
    pairs = {(e.text, e.type) for e in found}
    for e in found:
        assert case.text[e.start : e.end] == e.text
    missing = [
        (texts[0], type_)
        for texts, type_ in case.entities
        if not any((t, type_) in pairs for t in texts)
    ]
    wrong = [e for e in found if e.text in case.not_entities]
    assert not missing and not wrong, (case.text, sorted(pairs))


@pytest.mark.parametrize("case", [_case(c) for c in CASES])
def test_keywords_are_whole_terms(case: Golden, outputs: dict[str, AnalysisOutput]) -> None:
    keywords = [k.text for k in outputs[case.id].keywords or []]
    shown = {k.lower() for k in keywords}
    if case.keywords:
        assert any(want.lower() in k for want in case.keywords for k in shown), keywords
    assert not shown & {k.lower() for k in case.not_keywords}, keywords
    for keyword in keywords:
        if keyword.isascii():
            words = keyword.lower().split()
            assert words[0] not in EN_FUNCTION and words[-1] not in EN_FUNCTION, keyword
            assert not words[-1].replace(",", "").isdigit(), keyword
        else:
            words = [(w, t) for w, t in tag(keyword) if w.strip()]
            assert words[0][1] not in ZH_BAD_FIRST, (keyword, words)
            assert words[-1][1] not in ZH_BAD_LAST, (keyword, words)
