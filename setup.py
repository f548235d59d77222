import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PROTO = os.path.join("fuxi_csi", "proto", "csi.proto")


class BuildWithCsiStubs(build_py):
    """Generate the CSI driver's gRPC stubs from the proto this repository carries.

    They go next to the proto, before the modules are collected, so a wheel and
    an editable install both have them; they are never committed.
    """

    def run(self):
        from grpc_tools import protoc  # a build requirement (pyproject.toml)

        include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        argv = ["grpc_tools.protoc", f"-I{include}", "-I.", "--python_out=.", "--grpc_python_out=.", PROTO]
        if protoc.main(argv) != 0:
            raise RuntimeError(f"generating the CSI stubs from {PROTO} failed")
        super().run()


setup(
    name="fuxi",
    version="0.1.0",
    description="Docker volume plugin for OpenStack Cinder and Manila, "
    "and the storage_core library beneath it",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["fuxi", "fuxi.*", "storage_core", "storage_core.*", "fuxi_csi", "fuxi_csi.*"]),
    package_data={"fuxi_csi": ["proto/csi.proto"]},
    cmdclass={"build_py": BuildWithCsiStubs},
    install_requires=[
        "flask>=3.0",
        "gunicorn>=22",
        "os-brick>=6.0",
        "openstacksdk>=3.0",
        "oslo.concurrency>=5.0",
        "oslo.privsep>=3.0",
        "requests>=2.31",
        "requests-unixsocket>=0.3",
        "PyYAML>=6.0",
        # fuxi's /metrics (metrics_listen); storage_core does not need it.
        "prometheus-client>=0.17",
        # fuxi-csi, the Kubernetes CSI driver.
        "grpcio>=1.60",
        "protobuf>=4.21",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "cryptography>=41",
                 # tests/functional/test_packaging.py builds the wheel offline (setuptools < 70.1 needs it).
                 "wheel>=0.40",
                 # The same wheel build generates the CSI stubs.
                 "grpcio-tools>=1.60",
                 # tests/unit/test_kubernetes_manifests.py: Kubernetes' own schemas, offline.
                 "kubernetes-validate>=1.37"],
        # The plot of benchmarks/seed_steps.py.
        "bench": ["matplotlib>=3.7"],
    },
    entry_points={
        "console_scripts": [
            "fuxi=fuxi.cli:main",
            "fuxi-server=fuxi.server:main",
            "fuxi-devcloud=storage_core.devcloud.cli:main",
            "fuxi-csi=fuxi_csi.server:main",
        ],
    },
    data_files=[
        ("share/fuxi/systemd", ["systemd/fuxi.service", "systemd/fuxi.socket"]),
        ("share/fuxi/etc", ["etc/fuxi.conf.sample", "etc/clouds.yaml.sample"]),
        ("share/doc/fuxi", ["README.md"]),
    ],
)
