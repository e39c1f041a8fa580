"""Thin setuptools driver: CMake (CMakeLists.txt) builds the fastrec._C extension against the installed torch.

Environment switches:
  FASTREC_NATIVE=1   tune for this host's CPU (-march=native); the result may not run on other machines.
  FASTREC_CUDA=ON|OFF|AUTO   build the CUDA kernels (AUTO: when torch has CUDA and nvcc is found).
  FASTREC_DEBUG=1    a debug build.
  MAX_JOBS=N         parallel compile jobs (default: all cores).
  FASTREC_BUILD_DIR  the CMake build folder (default: build/cmake-<python>-torch<version>, kept between builds).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILD_INFO = "_build_info.py"  # written by CMake from csrc/build_info.py.in


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - depends on the build environment
            raise RuntimeError(
                "fastrec builds against the installed torch: install torch first, then "
                "`pip install --no-build-isolation .`"
            ) from exc

        output_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        # A persistent build folder per (Python, torch) pair keeps rebuilds incremental (Ninja, and ccache if present).
        default_build = ROOT / "build" / f"cmake-{sys.implementation.cache_tag}-torch{torch.__version__}"
        build_dir = Path(os.environ.get("FASTREC_BUILD_DIR", default_build)).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        config = "Debug" if os.environ.get("FASTREC_DEBUG") == "1" else "Release"
        native = "ON" if os.environ.get("FASTREC_NATIVE") == "1" else "OFF"
        cmake_args = [
            f"-S{ROOT}",
            f"-B{build_dir}",
            "-GNinja",
            f"-DCMAKE_BUILD_TYPE={config}",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DFASTREC_OUTPUT_DIR={output_dir}",
            f"-DFASTREC_NATIVE={native}",
            f"-DFASTREC_CUDA={os.environ.get('FASTREC_CUDA', 'AUTO')}",
            f"-DFASTREC_TORCH_VERSION={torch.__version__}",
        ]
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        subprocess.run(["cmake", *cmake_args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", jobs], check=True)

    def copy_extensions_to_source(self) -> None:
        # Editable installs copy the extension, and the build configuration CMake wrote beside it, into src/.
        # Each file is replaced atomically: a process that has the old extension loaded keeps running on it.
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            for source, target in ((Path(regular_file), Path(inplace_file)),
                                   (Path(regular_file).with_name(BUILD_INFO), Path(inplace_file).with_name(BUILD_INFO))):
                staging = target.with_name(target.name + ".tmp")
                shutil.copyfile(source, staging)
                os.replace(staging, target)


def torch_requirement() -> str:
    """The torch release this build compiles against: the extension's C++ ABI holds for that release only."""
    try:
        import torch
    except ImportError:
        return "torch>=2.4"  # metadata without a build; building fails with a clear message in CMakeBuild
    return f"torch=={torch.__version__.split('+')[0]}"


setup(
    ext_modules=[CMakeExtension("fastrec._C")],
    cmdclass={"build_ext": CMakeBuild},
    install_requires=[torch_requirement(), "numpy>=1.24", "scipy>=1.10", "numba>=0.59", "faiss-cpu>=1.8", "tqdm>=4.60"],
)
