module github.com/l5d-go/l5d/deploy

go 1.26
