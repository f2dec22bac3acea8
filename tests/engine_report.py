"""Which C-core kernels/ISA paths the tests exercised (printed by tests/conftest.py)."""

RAN: dict[str, set] = {"kernels": set(), "isas": set()}


def record(kernel_name: str, isa: str) -> None:
    RAN["kernels"].add(kernel_name)
    RAN["isas"].add(isa)
