"""The report's words in English and Chinese: every section title, table header and figure label
goes through `tr`, so `report.lang=zh` changes them all and a missing translation shows up in the
tests (tests/report/test_report_lang.py) rather than as English in a Chinese page."""

from __future__ import annotations

LANGS = ("en", "zh")

ZH: dict[str, str] = {
    # sections
    "Contents": "目录", "Flow": "流程", "Stages": "阶段", "Data ledger": "数据账本", "Cleaning funnel": "清洗漏斗",
    "Rejections by rule": "按规则拒绝", "Tokens": "词元", "Tokenizer report": "分词器报告", "Leakage check": "泄漏检查",
    "Training": "训练", "Learning-rate range test": "学习率范围测试", "Hyperparameter search": "超参数搜索",
    "key": "键", "fANOVA importance": "fANOVA 重要性", "Evaluation": "评估",
    "Multiple-choice tasks": "多项选择任务", "Cross-validation": "交叉验证", "Samples": "样本", "Events": "事件",
    "Config": "配置", "Figure": "图", "Model": "模型",
    # table headers
    "stage": "阶段", "seconds": "秒", "identity": "标识", "finished": "完成时间", "inputs": "输入", "outputs": "输出",
    "source": "来源", "in": "输入", "kept": "保留", "rejected": "拒绝", "by rule": "按规则", "split": "划分",
    "documents": "文档数", "characters": "字符数", "bytes": "字节数", "step": "步骤", "documents after": "之后文档数",
    "removed": "移除", "rule": "规则", "reasons": "原因", "example": "示例", "tokens": "词元数",
    "bytes per token": "每词元字节数", "13-grams": "13 元组", "seen in train": "在训练集中出现", "fraction": "比例",
    "check run at lr": "检查运行的学习率", "final train loss": "最终训练损失", "validation loss": "验证损失",
    "loss": "损失", "perplexity": "困惑度", "bits per byte": "每字节比特", "95% interval (documents)": "95% 区间（按文档）",
    "95% interval": "95% 区间", "next-token accuracy": "下一词元准确率", "top-k accuracy": "前 k 准确率",
    "task": "任务", "items": "题目数", "chance": "随机水平", "acc": "准确率", "acc_norm": "归一化准确率",
    "metric": "指标", "mean": "均值", "std": "标准差", "min": "最小值", "max": "最大值", "kind": "类型",
    "message": "消息", "reason": "原因", "untrained": "未训练", "value": "值",
    # figure labels
    "train loss": "训练损失", "lr": "学习率", "learning rate": "学习率", "loss (nats per token)": "损失（每词元奈特）",
    "gradient norm (before clipping)": "梯度范数（裁剪前）", "throughput (tokens/s)": "吞吐量（词元/秒）",
    "gradient norm per block": "每块梯度范数", "share of zero activations per block": "每块零激活比例",
    "validation loss per data source": "按数据来源的验证损失",
    "live adjustments (details in the events table)": "实时调整（详见事件表）",
    "documents after the step": "该步之后的文档数", "removed by the step": "该步移除的文档数",
    "the training flow of this run": "本次运行的训练流程",
    # flow chart
    "data": "数据", "tokenize": "分词", "train": "训练", "eval": "评估", "report": "报告",
    "not run": "未运行", "s": "秒", "writing this page": "正在生成本页",
    "corpus, data.paths": "语料库、data.paths", "data/*.jsonl.gz": "data/*.jsonl.gz",
    "splits, ledger.json": "数据划分、ledger.json", "tokenizer.json, tokens/*.bin": "tokenizer.json、tokens/*.bin",
    "tokens, config": "词元、配置", "checkpoints, metrics.jsonl": "检查点、metrics.jsonl",
    "checkpoint, val/test tokens": "检查点、验证/测试词元", "eval.json": "eval.json",
    "all of the above": "以上全部", "report/index.html, index.md": "report/index.html、index.md",
}


def tr(text: str, lang: str = "en") -> str:
    """`text` in `lang` (English is the key itself)."""
    return ZH.get(text, text) if lang == "zh" else text
