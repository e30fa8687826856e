"""Python reference model of the Linux 6.12 iommufd uAPI (with IOMMUFD_TEST's mock
driver and the vfio container compatibility ioctls).

    from fuzz.model import Model, run_model

Modules, named after the kernel files they follow:
  model.py     Model / run_model: argument resolution, the generic ioctl entry
               checks, dispatch, OpResult assembly, free choices
  objects.py   the object table (ids, finalize/abort) and object types (Ioas,
               HwPagetable, Device, SelftestObj, Access)
  iopt.py      io_pagetable / iopt_pages: areas, reserved/allowed ranges, IOVA
               allocation, map/unmap/split, domains, alignment, pin bookkeeping
  ioas.py      the IOAS ioctls, DESTROY, OPTION, IOMMU_VFIO_IOAS
  selftest.py  the IOMMU_TEST_CMD ops: mock devices/domains, probes, accesses
  vfio.py      the VFIO type1 container ioctls
  memory.py    the agent's user memory (mapping, contents) as the program sets it up
"""

from fuzz.model.model import Model, run_model

__all__ = ["Model", "run_model"]
