# job2.py: runs twice, side by side, with a different argument each time.
import sys
import time

time.sleep(1)  # some work, so that the two runs visibly overlap
print("world %s!" % sys.argv[1])
