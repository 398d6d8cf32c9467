# scripts/gpu-check's logic with stub nvidia-smi/cmake/ninja and the CPU tessera (no GPU).
find_program(PYTHON3_EXECUTABLE python3)
if(PYTHON3_EXECUTABLE)
  add_test(NAME gpu_check_stub
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/gpu_check_stub.sh $<TARGET_FILE:tessera>
                   ${TESSERA_TESTDATA})
  # COST: CTest starts the costliest tests first; a fresh clone has no timings, so the longest
  # ones (tens of seconds here, registered last) would otherwise run alone at the end.
  set_tests_properties(gpu_check_stub PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1"
                       COST 100)
endif()

# The main job under QEMU as CPUs without AVX-512 / AVX (not in sanitizer builds: ASan's
# shadow memory and QEMU's user-mode address space do not mix).
if(NOT TESSERA_SANITIZE)
  add_test(NAME cpu_isa_qemu
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cpu_isa_qemu.sh $<TARGET_FILE:tessera>
                   ${CMAKE_SOURCE_DIR}/examples/TinyStories-656K)
  set_tests_properties(cpu_isa_qemu PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       ENVIRONMENT "${TESSERA_TEST_OMP_ENV}")
endif()
