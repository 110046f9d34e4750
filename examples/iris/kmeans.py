# k-means (k = 3, k-means++ seeding) on the leased Iris dataset, mounted
# read-only at ~/iris. Writes each row's cluster to the outputs, and the
# model to the working directory for summary.py. Standard library only.
import csv
import json
import os
import random

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
OUTPUT = os.environ.get("OUTPUT_DIR", "/output")


def d2(a, b):
    return sum((p - q) ** 2 for p, q in zip(a, b))


def kmeans(xs, k, rng, max_iterations=100):
    centroids = [rng.choice(xs)]
    while len(centroids) < k:
        weights = [min(d2(x, c) for c in centroids) for x in xs]
        centroids.append(rng.choices(xs, weights=weights)[0])
    for iteration in range(1, max_iterations + 1):
        labels = [min(range(k), key=lambda j: d2(x, centroids[j])) for x in xs]
        new = [
            [sum(x[i] for x, l in zip(xs, labels) if l == j) / max(1, labels.count(j)) for i in range(len(COLUMNS))]
            for j in range(k)
        ]
        if new == centroids:
            break
        centroids = new
    return centroids, labels, iteration


def main():
    with open("iris/iris.csv") as f:
        rows = list(csv.DictReader(f))
    xs = [[float(r[c]) for c in COLUMNS] for r in rows]
    centroids, labels, iterations = kmeans(xs, 3, random.Random(7))
    inertia = sum(d2(x, centroids[l]) for x, l in zip(xs, labels))
    print(f"k-means on {len(xs)} flowers: converged after {iterations} iterations, inertia {inertia:.2f}")
    with open(os.path.join(OUTPUT, "assignments.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "cluster"])
        w.writerows(enumerate(labels))
    with open("model.json", "w") as f:
        json.dump({"columns": COLUMNS, "centroids": centroids, "species": [r["species"] for r in rows]}, f)


if __name__ == "__main__":
    main()
