"""A small Chinese knowledge file (a fictional bakery, FILE) and questions about it.

Each question names the section (its `## ` heading) that answers it; a chunk answers when its headings
end with that section. OFF_TOPIC are questions the shop's knowledge does not cover: a GPT set to refuse
(`min_score`) should find nothing for them.
"""

from __future__ import annotations

from pathlib import Path

# The file is also the knowledge of the Chinese GPT that bench/answers.py asks (bench/answers/gpts/zh-bakery.yaml).
FILE = Path(__file__).resolve().parent.parent / "answers" / "gpts" / "knowledge" / "zh-bakery" / "zh_shop.md"

QUESTIONS: list[tuple[str, tuple[str, ...], str]] = [
    ("你们店在哪里？", ("店铺简介",), "para"),
    ("你们早上几点开门？", ("营业时间",), "para"),
    ("周末营业到几点？", ("营业时间",), "para"),
    ("春节放假吗？", ("营业时间",), "kw"),
    ("8个人吃的蛋糕多少钱？", ("生日蛋糕价格",), "para"),
    ("16人份的生日蛋糕要多少钱？", ("生日蛋糕价格",), "para"),
    ("订蛋糕需要提前多久？", ("蛋糕预订",), "para"),
    ("定金要付多少？", ("蛋糕预订",), "kw"),
    ("我想取消订单，钱能退吗？", ("取消与退款",), "para"),
    ("送货上门收费吗？", ("配送服务",), "para"),
    ("充值会员卡有什么优惠？", ("会员卡",), "kw"),
    ("积分怎么用？", ("会员卡",), "kw"),
    ("我对坚果过敏，可以吃你们的面包吗？", ("过敏原信息",), "para"),
    ("有没有适合糖尿病人吃的蛋糕？", ("无糖与纯素蛋糕",), "para"),
    ("面包买回家能放几天？", ("面包保存方法",), "para"),
    ("公司要订100份下午茶有折扣吗？", ("企业团购",), "para"),
    ("孩子可以来学做蛋糕吗？", ("烘焙课程",), "para"),
    ("开车去你们店好停车吗？", ("停车与交通",), "para"),
    ("坐地铁怎么去你们店？", ("停车与交通",), "para"),
    ("可以用支付宝付款吗？", ("支付方式",), "kw"),
    ("你们在招人吗？工资多少？", ("招聘信息",), "para"),
    ("可以带狗进店吗？", ("宠物政策",), "para"),
]

OFF_TOPIC: list[str] = [
    "今天上海的天气怎么样？",
    "如何用Python读取Excel文件？",
    "推荐一部好看的科幻电影。",
    "比特币现在的价格是多少？",
    "感冒了吃什么药好得快？",
    "世界上最高的山是哪座？",
]
