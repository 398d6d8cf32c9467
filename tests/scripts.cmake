# scripts/gpu-check's logic with stub nvidia-smi/cmake/ninja and the CPU tessera (no GPU).
find_program(PYTHON3_EXECUTABLE python3)
if(PYTHON3_EXECUTABLE)
  add_test(NAME gpu_check_stub
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/gpu_check_stub.sh $<TARGET_FILE:tessera>
                   ${TESSERA_TESTDATA})
  set_tests_properties(gpu_check_stub PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1")
endif()
