# Tensor-parallel tests on CPU ranks: the same gtest binary under mpirun -np 2, 3 and 4.
if(TESSERA_MPI)
  set(mpi_test_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
  if(TESSERA_SANITIZE)
    # OpenMPI's MCA plugins are dlopen()ed and unloaded before exit, so LSan reports their
    # allocations as "<unknown module>" and no suppression can name them. Memory errors are
    # still caught here; leaks of our own code are checked by the single-process tests.
    list(APPEND mpi_test_env "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
  endif()
  add_executable(tessera_mpi_tests ${CMAKE_SOURCE_DIR}/tests/mpi/tp_equivalence_test.cpp
                 ${CMAKE_SOURCE_DIR}/tests/mpi/comm_collectives_test.cpp
                 ${CMAKE_SOURCE_DIR}/tests/mpi/tp_quant_test.cpp
                 ${CMAKE_SOURCE_DIR}/tests/test_util.cpp ${CMAKE_SOURCE_DIR}/tests/model_test_util.cpp)
  target_link_libraries(tessera_mpi_tests PRIVATE tessera_core GTest::gtest)
  target_compile_definitions(tessera_mpi_tests PRIVATE
      TESSERA_TESTDATA_DEFAULT="${TESSERA_TESTDATA}" TESSERA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  foreach(np 2 3 4)
    add_test(NAME mpi_tp${np}
             COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe
                     $<TARGET_FILE:tessera_mpi_tests>)
    set_tests_properties(mpi_tp${np} PROPERTIES TIMEOUT 600 ENVIRONMENT "${mpi_test_env}"
                         COST ${np})
  endforeach()
  add_test(NAME mpi_generate_tp2
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/generate_tp.sh $<TARGET_FILE:tessera>
                   ${TESSERA_TESTDATA})
  set_tests_properties(mpi_generate_tp2 PROPERTIES TIMEOUT 300 ENVIRONMENT "${mpi_test_env}")
  add_test(NAME mpi_kill_rank
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/kill_rank.sh $<TARGET_FILE:tessera>
                   ${TESSERA_TESTDATA})
  set_tests_properties(mpi_kill_rank PROPERTIES TIMEOUT 300 ENVIRONMENT "${mpi_test_env}"
                       COST 30)
endif()
