"""The trace loaders on small slices of the real files (tests/data/traces): the column
mapping, the time window, the compression, and the malformed rows they skip and count."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.scheduler.core.model import Group, Kind, QosClass
from services.scheduler.simulator import alibaba_gpu, azure_llm, genai
from services.scheduler.simulator.traces import Skipped, Window

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"
MIB = 1 << 20


def by_id(arrivals):
    return {a.demand.task_id: a for a in arrivals}


# ---- Alibaba GPU 2023 ---------------------------------------------------------------


def test_alibaba_nodes_map_gpu_type_slots_and_memory():
    skipped = Skipped()
    workers = {w.worker_id: w for w in alibaba_gpu.load_nodes(TRACES, skipped=skipped)}
    assert len(workers) == 17
    cpu = workers["openb-node-0000"]  # 32000 milli-cores, no GPU: 4 slots of 8 cores
    assert (cpu.kind, cpu.device_model, cpu.slots, cpu.memory_bytes) == (Kind.CPU, "CPU", 4, 262144 * MIB)
    t4 = workers["openb-node-0243"]  # 4 x T4
    assert (t4.kind, t4.device_model, t4.slots, t4.free_slots) == (Kind.GPU, "T4", 4, 4)
    assert workers["openb-node-0228"].device_model == "G3"
    assert list(skipped) == ["openb_node_list_all_node.csv:19: memory_mib is not a number: 'lots'"]


def test_alibaba_pods_map_qos_gpu_and_duration():
    skipped = Skipped()
    pods = by_id(alibaba_gpu.load_pods(TRACES, skipped=skipped))
    assert len(pods) == 33
    ls = pods["openb-pod-0000"]  # LS, 1 GPU, created at 0 (before day 115)
    assert (ls.demand.category, ls.demand.qos_class, ls.demand.group) == (
        "inference",
        QosClass.LATENCY_CRITICAL,
        Group.GPU_ONLY,
    )
    assert ls.at == 0.0 and ls.work == 12537496 - 0
    assert ls.demand.memory_bytes == 16384 * MIB and ls.demand.model == "g1"
    be = pods["openb-pod-0029"]  # BE: training; arrival from day 115; work = deletion - scheduled
    assert (be.demand.category, be.demand.qos_class) == ("training_step", QosClass.BATCH)
    assert be.at == 9955274 - alibaba_gpu.DENSE_START_S and be.work == 10027972 - 9955274
    cpu = pods["openb-pod-0048"]  # no GPU: CPU_ONLY preprocess
    assert (cpu.demand.group, cpu.demand.category, cpu.demand.model) == (Group.CPU_ONLY, "preprocess", "cpu")
    pending = pods["openb-pod-0061"]  # never scheduled: work from its creation
    assert pending.work == 10001403 - 10001278
    burst = pods["openb-pod-0128"]  # Burstable, 8 GPUs: one slot, standard inference
    assert (burst.demand.qos_class, burst.demand.model) == (QosClass.STANDARD, "g8")
    assert [r.split(": ", 1)[1] for r in skipped] == [
        "creation_time is not a number: 'soon'",
        "creation_time is empty",
    ]
    assert [r.split(":")[1] for r in skipped] == ["35", "36"]


def test_alibaba_pods_window_and_compression():
    everything = alibaba_gpu.load_pods(TRACES)
    assert [a.at for a in everything] == sorted(a.at for a in everything)
    day = Window(0.0, 86400.0)  # day 115 (and the early pods, which arrive at its start)
    kept = alibaba_gpu.load_pods(TRACES, 4.0, window=day)
    assert {a.demand.task_id for a in kept} == {a.demand.task_id for a in everything if a.at < 86400.0}
    later = Window(20_000.0, 60_000.0)
    shifted = by_id(alibaba_gpu.load_pods(TRACES, 4.0, window=later))
    for task_id, a in shifted.items():
        original = by_id(everything)[task_id]
        assert 20_000.0 <= original.at < 60_000.0
        assert a.at == pytest.approx((original.at - 20_000.0) / 4.0)
        assert a.work == original.work  # execution is not compressed
    assert len(alibaba_gpu.load_pods(TRACES, limit=5)) == 5


# ---- Azure LLM 2023 -----------------------------------------------------------------


def test_azure_rows_map_tokens_to_work_and_slo():
    skipped = Skipped()
    arrivals = azure_llm.load_requests(TRACES, slo_factor=5.0, slo_floor_s=1.0, skipped=skipped)
    assert len(arrivals) == 40
    first = arrivals[0]  # conv 18:15:46.68059 is the earliest row of the two files
    assert first.at == 0.0 and first.demand.tenant == "llm-conv" and first.demand.model == "llm-conv"
    assert first.work == pytest.approx(0.15 + 374 / 20_000 + 44 * 0.02)
    assert first.demand.deadline == pytest.approx(max(5 * first.work, 1.0))
    code = next(a for a in arrivals if a.demand.tenant == "llm-code")  # 18:17:03.97996, 4808, 10
    assert code.at == pytest.approx(77.29937, abs=1e-6)
    assert code.work == pytest.approx(0.15 + 4808 / 20_000 + 10 * 0.02)
    assert {a.demand.qos_class for a in arrivals} == {QosClass.LATENCY_CRITICAL}
    assert [a.at for a in arrivals] == sorted(a.at for a in arrivals)
    assert sorted(r.split(": ", 1)[0] for r in skipped) == [
        "AzureLLMInferenceTrace_code.csv:22",
        "AzureLLMInferenceTrace_code.csv:23",
        "AzureLLMInferenceTrace_conv.csv:22",
    ]


def test_azure_window_and_compression():
    everything = azure_llm.load_requests(TRACES)
    kept = azure_llm.load_requests(TRACES, 2.0, window=Window(60.0, 100.0))
    expected = [a for a in everything if 60.0 <= a.at < 100.0]
    assert [a.demand.task_id for a in kept] == [a.demand.task_id for a in expected]
    for a, e in zip(kept, expected, strict=True):
        assert a.at == pytest.approx((e.at - 60.0) / 2.0)
        assert a.demand.deadline == pytest.approx(a.at + max(5 * a.work, 1.0))


# ---- Alibaba GenAI 2026 -------------------------------------------------------------


def test_genai_rows_map_tenant_model_batch_and_work():
    skipped = Skipped()
    arrivals = genai.load_requests(TRACES, skipped=skipped)
    assert len(arrivals) == 30
    first = arrivals[0]  # 2024-11-15 16:57:50, G0000, 32 s, 1 image, M0000
    assert (first.at, first.work, first.demand.tenant, first.demand.model) == (0.0, 32.0, "G0000", "M0000")
    assert (first.demand.category, first.demand.group) == ("create_synthetic_data", Group.GPU_ONLY)
    second = by_id(arrivals)["genai-2"]  # 18:17:06, G0001, 36 s, 8 images
    assert second.at == 4756.0 and second.demand.batch_size == 8 and second.work == 36.0
    assert {a.demand.tenant for a in arrivals} == {"G0000", "G0001", "G0002", "G0003"}
    assert [r.split(": ", 1)[1] for r in skipped] == [
        "exec_time_seconds is empty",
        "groupId is empty",
        "time data '16/11/2024 02:00' does not match format '%Y-%m-%d %H:%M:%S'",
    ]


def test_genai_window_and_compression():
    hour = genai.load_requests(TRACES, 10.0, window=Window(3600.0, 7200.0))
    everything = by_id(genai.load_requests(TRACES))
    assert hour and all(3600.0 <= everything[a.demand.task_id].at < 7200.0 for a in hour)
    assert len(hour) == sum(1 for a in everything.values() if 3600.0 <= a.at < 7200.0)
    for a in hour:
        assert a.at == pytest.approx((everything[a.demand.task_id].at - 3600.0) / 10.0)
    assert [a.at for a in hour] == sorted(a.at for a in hour)


def test_window_rejects_an_empty_range():
    with pytest.raises(ValueError):
        Window(10.0, 10.0)
