module github.com/l5d-go/l5d/policy

go 1.26
