# Summarises kmeans.py's clusters against the species: what each cluster
# holds and how pure the clustering is. Writes summary.txt to the outputs.
import collections
import csv
import json
import os

OUTPUT = os.environ.get("OUTPUT_DIR", "/output")

with open("model.json") as f:
    model = json.load(f)
with open(os.path.join(OUTPUT, "assignments.csv")) as f:
    labels = [int(r["cluster"]) for r in csv.DictReader(f)]
by_cluster = collections.defaultdict(collections.Counter)
for label, species in zip(labels, model["species"]):
    by_cluster[label][species] += 1
purity = sum(c.most_common(1)[0][1] for c in by_cluster.values()) / len(labels)
lines = [f"{len(labels)} flowers in {len(by_cluster)} clusters; purity against species {purity:.2f}"]
for j in sorted(by_cluster):
    centroid = ", ".join(f"{c}={v:.2f}" for c, v in zip(model["columns"], model["centroids"][j]))
    top = by_cluster[j].most_common(1)[0][0]
    lines.append(f"cluster {j}: {sum(by_cluster[j].values())} flowers, mostly {top}; centroid {centroid}")
with open(os.path.join(OUTPUT, "summary.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
