module github.com/l5d-go/l5d/destination

go 1.26
