param($AssemblyPath, $OutputPath) Write-Host "help: (generator pending)"
