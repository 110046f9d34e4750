# job1.py: the first job; it leaves a file for the last one in $HOME.
with open("greeting.txt", "w") as f:
    f.write("hello\n")
print("hello")
