"""Shared fixtures: small generated corpora, and the optional ../shared data."""

import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def shared_file(*parts):
    """Path of a file in ../shared/data, or skip the test when it is absent (a user's clone)."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared data not available: {path}")
    return path


def planted_topics(n_topics=6, words_per_topic=12, n_sentences=4000, sentence_len=12, seed=0):
    """Sentences that each draw words from one topic, plus topic-free filler words.

    Words of one topic co-occur and never meet another topic's words, so a
    working trainer must place each word nearest to its own topic.
    """
    rng = np.random.default_rng(seed)
    topics = [[f"t{t}w{i}" for i in range(words_per_topic)] for t in range(n_topics)]
    fillers = ["the", "of", "and", "a", "in"]
    lines = []
    for _ in range(n_sentences):
        topic = topics[rng.integers(n_topics)]
        words = []
        for _ in range(sentence_len):
            if rng.random() < 0.25:
                words.append(fillers[rng.integers(len(fillers))])
            else:
                words.append(topic[rng.integers(len(topic))])
        lines.append(" ".join(words))
    return topics, "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def planted_workdir(tmp_path_factory):
    """A counted workdir over the planted-topics corpus: (workdir, topics, text path)."""
    from bigw2v.counter import count
    root = tmp_path_factory.mktemp("planted")
    topics, text = planted_topics()
    path = root / "topics.txt"
    path.write_text(text)
    workdir = root / "work"
    count([str(path)], str(workdir), min_count=1, threads=1, progress=False)
    return str(workdir), topics, str(path)


# A file whose existence makes Ray counting tasks wait at their start (ray_count.HOLD_ENV):
# set before the cluster starts, so every worker process sees the variable.
RAY_HOLD_FILE = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bigw2v-ray-hold-{os.getpid()}")


# Ray nodes on the loopback address, not the machine's network one: Ray reads this
# when it is imported (it maps "localhost" to the network address unless it is off).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    """A real two-node Ray cluster on this machine (1 CPU a node), one per test session.

    Two nodes, so nothing may rely on one node's disk or memory. Skips when Ray
    (the `ray` extra) is not installed. Yields the cluster's address.
    """
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    os.environ["BIGW2V_TEST_HOLD_FILE"] = RAY_HOLD_FILE
    node = {"num_cpus": 1, "object_store_memory": 150 * 2**20,
            "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=dict(node))
    cluster.add_node(**{k: v for k, v in node.items() if k != "include_dashboard"})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
