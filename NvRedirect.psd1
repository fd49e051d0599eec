@{
    RootModule           = 'bin/NvRedirect.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '3c0b6f0e-5d1a-4b8e-9f63-7a2d41c9e8b4'
    Author               = 'NvRedirect'
    CompanyName          = 'NvRedirect'
    Copyright            = '(c) NvRedirect contributors'
    Description          = 'Inline container traffic interception in the style of NeuVector: network namespaces, veth links, tc redirect filters and a user-space datapath, over netlink (Linux).'
    PowerShellVersion    = '7.6'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('bin/NvRedirect.format.ps1xml')
    CmdletsToExport      = @(
        'New-AgentNamespace', 'Get-AgentNamespace', 'Remove-AgentNamespace',
        'New-AgentLink', 'Get-AgentLink', 'Set-AgentLink', 'Rename-AgentLink', 'Move-AgentLink', 'Remove-AgentLink',
        'Add-AgentAddress', 'Get-AgentAddress', 'Remove-AgentAddress',
        'Add-AgentQdisc', 'Get-AgentQdisc', 'Remove-AgentQdisc',
        'Add-RedirectFilter', 'Get-RedirectFilter', 'Remove-RedirectFilter',
        'Watch-AgentTraffic',
        'Add-WorkloadInterception', 'Get-WorkloadInterception', 'Remove-WorkloadInterception', 'New-SeedTopology', 'Remove-SeedTopology',
        'Start-Datapath', 'Get-Datapath', 'Stop-Datapath', 'Export-DpMetrics', 'Get-AgentTopology', 'ConvertTo-TopologyDiagram',
        'Add-DpServicePort', 'Set-DpInternalNetwork', 'Add-DpMac', 'Set-DpMac', 'Remove-DpMac', 'Get-DpSession', 'Clear-DpSession', 'Send-DpMessage',
        'New-DpRule', 'ConvertTo-DpRule', 'Set-DpPolicy', 'Get-DpPolicy', 'Remove-DpPolicy', 'Add-DpPolicyRule', 'Remove-DpPolicyRule',
        'Set-DpWorkloadMode', 'Get-DpConnection', 'Clear-DpConnection',
        'Get-DpDeviceStatistic', 'Get-DpMacStatistic', 'Get-DpMeter',
        'Test-AgentConnection', 'Disconnect-AgentConnection', 'Start-AgentEchoServer', 'Get-AgentEchoServer', 'Stop-AgentEchoServer',
        'Get-NvRedirectConfiguration', 'Test-NvRedirectConfiguration', 'Set-NvRedirectConfiguration'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{ PSData = @{ Tags = @('Linux', 'netlink', 'tc', 'NeuVector', 'network-namespace') } }
}
