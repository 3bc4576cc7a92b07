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
    # the model section
    "Signal check at init": "初始化时的信号检查", "family": "模型族", "layers": "层数", "heads": "注意力头数",
    "key/value heads": "键/值头数", "width": "宽度", "MLP width": "MLP 宽度", "context": "上下文长度",
    "vocabulary": "词表大小", "parameters": "参数量", "embedding parameters": "嵌入参数量",
    "non-embedding parameters": "非嵌入参数量", "recorded by the train stage": "训练阶段记录的参数量",
    "same": "一致", "DIFFERENT": "不一致", "FLOPs per token (forward + backward)": "每词元 FLOPs（前向 + 反向）",
    "init scheme": "初始化方案", "weights from": "权重来自", "parameter tensors per init rule": "各初始化规则的参数张量数",
    "init overrides": "初始化覆盖", "verdict": "结论", "loss at init": "初始化时的损失", "layer": "层",
    "activation std": "激活标准差", "d loss / d output": "损失对输出的梯度", "parameter gradients": "参数梯度",
    "block": "块", "embedding": "嵌入", "signal per block at init": "初始化时每块的信号", "not measured": "未测量",
    "healthy": "健康", "vanishing": "梯度消失", "exploding": "梯度爆炸", "at init": "初始化时",
    "forward: activation std": "前向：激活标准差", "backward: gradient norm": "反向：梯度范数",
    # the LR and batch section
    "Learning-rate schedule and batch": "学习率调度与批量", "schedule": "调度", "peak learning rate": "峰值学习率",
    "warmup steps": "预热步数", "floor (train.min_lr)": "下限（train.min_lr）",
    "learning rate at the last step": "最后一步的学习率", "planned steps": "计划步数", "trained steps": "已训练步数",
    "logged learning rate": "记录的学习率", "as planned": "与计划一致", "differs from the plan from step": "偏离计划，始于步骤",
    "points": "个点", "largest relative gap": "最大相对偏差", "batch (sequences per step)": "批量（每步序列数）",
    "micro-batch": "微批量", "gradient accumulation": "梯度累积", "processes": "进程数", "context length": "上下文长度",
    "tokens per step": "每步词元数", "batch warmup steps": "批量预热步数", "planned tokens": "计划词元数",
    "tokens trained (logged)": "已训练词元数（记录）", "passes over the training tokens": "训练词元遍数",
    "time budget": "时间预算", "steps": "步", "budget plan": "预算计划", "train stage time": "训练阶段用时", "measured step time": "实测每步时间",
    "measured validation pass": "实测一次验证时间", "planned and logged learning rate": "计划与记录的学习率",
    "planned (train.schedule)": "计划（train.schedule）", "logged (metrics.jsonl)": "记录（metrics.jsonl）",
    "end of warmup": "预热结束",
    # the doctor's section
    "Doctor's findings": "诊断结果", "Finding": "发现", "problem(s) found": "个问题被发现", "error(s)": "个错误",
    "from `lmforge doctor RUN` (doctor/diagnosis.json)": "来自 `lmforge doctor RUN`（doctor/diagnosis.json）",
    "repair(s) applied": "次修复已应用", "error": "错误", "warning": "警告", "symptom": "症状",
    "detected at step": "检测步骤", "evidence": "证据", "non-finite values": "个非有限值",
    "Remedies, best first": "补救措施（按优先级）", "remedy": "补救措施", "outcome": "结果", "applied": "已应用",
    "verified": "已验证", "failed": "失败", "not applied": "未应用", "gave up": "放弃",
    "No repair applied (doctor.policy=auto applies them).": "未应用修复（doctor.policy=auto 时会自动应用）。",
    "No problems found.": "未发现问题。", "The doctor checked": "诊断器检查了", "logged points": "个记录点",
    "for": "，检查项", "The doctor watched training and recorded no diagnosis.": "诊断器监视了训练，未记录任何诊断。",
    # the doctor's explanations and remedies (doctor/findings.py), keyed by their English text
    ("the loss, the gradients or the weights became NaN or Inf: a number overflowed (usually an LR "
     "too high, no clipping, or float16 without enough range) and every later step is lost"):
        "损失、梯度或权重变成了 NaN 或 Inf：某个数值溢出（通常是学习率过高、未做梯度裁剪，或 float16 的范围不够），之后的每一步都白费了",
    ("gradient norms grew by orders of magnitude: each update overshoots, which feeds larger "
     "gradients again (Pascanu et al. 2013); clipping and a lower LR break the loop"):
        "梯度范数增长了几个数量级：每次更新都过头，又带来更大的梯度（Pascanu 等，2013）；梯度裁剪和更低的学习率可以打破这个循环",
    ("the gradients of the first blocks are orders of magnitude smaller than the last's (or all are "
     "tiny): the early layers barely learn; usually the initialisation is far too small for the depth"):
        "前几个块的梯度比最后一个块小几个数量级（或全都极小）：前面的层几乎学不到东西；通常是初始化相对于深度太小",
    ("the loss jumped far above its recent level and the gradient norm with it: one batch or a "
     "too-large step threw the weights off; PaLM restarted before such spikes and skipped the batches"):
        "损失（连同梯度范数）跳到远高于近期水平：某个批次或过大的一步把权重带偏了；PaLM 的做法是回到尖峰之前重新开始并跳过这些批次",
    ("the loss rose above where it started or far above its best (divergence), or each step changes "
     "the weights by more than a tenth of their size: the learning rate is too high"):
        "损失升到起点之上或远高于其最佳值（发散），或者每一步对权重的改变超过其大小的十分之一：学习率过高",
    ("each step changes the weights by less than 3e-4 of their size (healthy runs measured 2e-3 to "
     "1e-2) and the loss barely moves: the learning rate is too low"):
        "每一步对权重的改变不到其大小的 3e-4（健康的运行为 2e-3 到 1e-2），损失几乎不动：学习率过低",
    ("the validation loss rises while the training loss still falls: the model memorises its training "
     "data instead of learning what carries over"):
        "验证损失上升而训练损失仍在下降：模型在记忆训练数据，而不是学习可以推广的规律",
    ("training and validation loss stay near the unigram entropy, the loss of a model that knows only "
     "how common each token is, and no longer fall: the model uses almost nothing of the context"):
        "训练和验证损失停留在一元熵附近（只知道各词元出现频率的模型的损失），且不再下降：模型几乎没有利用上下文",
    ("the loss has stopped falling over a large part of the run while it is still high: "
     "progress is too slow to reach a good model in the steps left"):
        "损失在运行的很大一部分中停止下降，而且仍然偏高：进展太慢，剩余步数内无法得到好的模型",
    ("the loss goes up and down from one logged step to the next by a large share of its level: the "
     "steps overshoot back and forth; a lower LR or a higher momentum smooths them"):
        "损失在相邻记录步之间大幅上下波动：更新来回过头；更低的学习率或更高的动量可以使其平滑",
    "most MLP activations of a block are (near) zero: its units no longer pass signal or gradient":
        "某个块的大多数 MLP 激活（几乎）为零：这些单元不再传递信号或梯度",
    ("the training set is so small that every token has been seen many times: the model sees "
     "repeated batches and will memorise them"):
        "训练集太小，每个词元都已被看过很多次：模型看到的是重复的批次，会把它们记住",
    ("validation text also appears in the training data (or validation loss sits below training loss "
     "without dropout): the validation loss flatters the model"):
        "验证文本也出现在训练数据中（或在没有 dropout 时验证损失低于训练损失）：验证损失高估了模型",
    "go back to the last good weights and skip the batches since": "回到最后一次良好的权重，并跳过此后的批次",
    ("lower the learning rate (tenfold, or after a divergence to what a short LR range test finds) "
     "and clip gradients tighter, training again from step 0 (after a spike: from the last good weights)"):
        "降低学习率（降为十分之一；发散之后则降到一次简短的学习率范围测试所找到的值）并收紧梯度裁剪，"
        "从第 0 步重新训练（发生尖峰后：从最后一次良好的权重开始）",
    "raise the learning rate (tenfold, or to a healthy update size), training again from step 0":
        "提高学习率（十倍，或提高到健康的更新幅度），从第 0 步重新训练",
    "re-initialise the weights with the family's default scheme, training again from step 0":
        "用该模型族的默认方案重新初始化权重，从第 0 步重新训练",
    "put back the weights of the best validation loss and stop": "恢复验证损失最佳时的权重并停止训练",
    "more dropout and weight decay": "增加 dropout 和权重衰减",
    "no dropout and a tenth of the weight decay, training again from step 0":
        "去掉 dropout，权重衰减降为十分之一，从第 0 步重新训练",
    "train a larger model (a new run)": "训练更大的模型（需新的运行）",
        "remove the text that validation shares with training (a new run)": "删除验证集与训练集共有的文本（需新的运行）",
    "train in bfloat16 instead of float16 (a new run)": "用 bfloat16 代替 float16 训练（需新的运行）",
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
