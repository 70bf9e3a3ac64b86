import json, os, subprocess, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("gopack-spark-check").getOrCreate()
sc = spark.sparkContext

def task(i):
    import os, subprocess, sys
    import numpy, pandas
    bindir = os.path.dirname(sys.executable)
    check = subprocess.run([os.path.join(bindir, "healthcheck"), "-selftest"],
                           capture_output=True, text=True)
    with open(os.path.join(sys.prefix, "bin", "pip"), "rb") as f:
        pip_line = f.readline().decode("utf-8", "replace").strip()
    return {
        "task": i,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "prefix": sys.prefix,
        "executable": sys.executable,
        "real_prefix": os.path.realpath(sys.prefix),
        "numpy": numpy.__version__,
        "numpy_file": numpy.__file__,
        "pandas": pandas.__version__,
        "numpy_sum": int(numpy.arange(i + 10).sum()),
        "pandas_sum": int(pandas.DataFrame({"a": [i, 1, 2]})["a"].sum()),
        "selftest": check.stdout.strip(),
        "selftest_rc": check.returncode,
        "pip_shebang": pip_line,
    }

results = sc.parallelize(range(4), 4).map(task).collect()
print("GOPACK_SPARK_RESULT " + json.dumps(results))
spark.stop()
