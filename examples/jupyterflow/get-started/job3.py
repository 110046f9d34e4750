# job3.py: runs once both job2.py runs have succeeded.
with open("greeting.txt") as f:
    print(f.read().strip(), "again!")
