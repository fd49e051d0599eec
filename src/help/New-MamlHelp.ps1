#Requires -Version 7.4
<#
.SYNOPSIS
    Writes the MAML help file that Get-Help reads for a binary module, and the Markdown cmdlet reference, from the
    cmdlets themselves and their C# XML doc comments.
.DESCRIPTION
    The text comes from the XML documentation file the compiler writes next to the dll (NvRedirect.xml):
      cmdlet class:  <summary><para type="synopsis">          one line: SYNOPSIS
                     <summary><para type="description">       paragraphs: DESCRIPTION (a plain <summary> also works)
                     <remarks>                                NOTES
                     <example><code>..</code><para>..</para>  EXAMPLES: the code, then a line saying what it does
      parameter property: <summary> (<para type="description"> or plain text)
      output type:   its <summary>, under OUTPUTS
    Everything else (parameter types, mandatory, position, pipeline input, aliases, wildcards, parameter sets,
    ValidateSet/ValidateRange, defaults, [OutputType]) is read from the cmdlets as PowerShell binds them, so nothing
    here names a cmdlet and new cmdlets get help by being documented in C#.

    Reading that metadata means loading the module, and a loaded dll cannot be unloaded; the build may rebuild it in
    the same session. So this script starts itself again in a child pwsh (-InChildProcess) that imports the manifest,
    writes both files and exits; the calling process never loads the module.

    Missing text (a cmdlet without synopsis, description or example; an example without an explanation; a parameter
    without a description) is reported as a warning; tests/pester/Help.Tests.ps1 turns it into a failure.
.EXAMPLE
    ./src/help/New-MamlHelp.ps1 -AssemblyPath bin/NvRedirect.dll -OutputPath en-US/NvRedirect.dll-Help.xml -MarkdownPath docs/cmdlets.md
#>
[CmdletBinding()]
param(
    # The module's dll; its doc comments are read from the .xml of the same name beside it.
    [Parameter(Mandatory)][string]$AssemblyPath,
    # The MAML file, <ModuleBase>/<culture>/<dll name>-Help.xml.
    [Parameter(Mandatory)][string]$OutputPath,
    # The Markdown reference; not written when absent.
    [string]$MarkdownPath,
    # The manifest to import (its CmdletsToExport order is the order of the reference).
    [string]$ManifestPath = (Join-Path $PSScriptRoot '../../NvRedirect.psd1'),
    # Internal: set when this script runs as its own child process.
    [Parameter(DontShow)][switch]$InChildProcess
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Resolve-FullPath([string]$Path) { $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path) }

if (-not $InChildProcess) {
    $childArgs = @('-NoProfile', '-NonInteractive', '-File', $PSCommandPath, '-InChildProcess',
        '-AssemblyPath', (Resolve-FullPath $AssemblyPath), '-OutputPath', (Resolve-FullPath $OutputPath),
        '-ManifestPath', (Resolve-FullPath $ManifestPath))
    if ($MarkdownPath) { $childArgs += @('-MarkdownPath', (Resolve-FullPath $MarkdownPath)) }
    # pwsh.dll sits in $PSHOME both for the dotnet tool and for a regular install
    & dotnet (Join-Path $PSHOME 'pwsh.dll') @childArgs
    if ($LASTEXITCODE -ne 0) { throw "Help generation failed with exit code $LASTEXITCODE." }
    return
}

# ---------------------------------------------------------------------------------------------------------------
# Doc comments

# Member ids as the C# compiler writes them: T:Namespace.Type, P:Namespace.Type.Property (nested types use '.').
function Get-DocId([string]$Kind, [type]$Type, [string]$Member) {
    $id = "${Kind}:" + $Type.FullName.Replace('+', '.')
    if ($Member) { $id += ".$Member" }
    $id
}

# Inline doc markup to text: <see cref>, <paramref>, <c> keep their words; white space is collapsed.
function ConvertTo-DocText($Node) {
    $sb = [Text.StringBuilder]::new()
    foreach ($child in $Node.ChildNodes) {
        if ($child -is [Xml.XmlCharacterData]) { [void]$sb.Append($child.Value); continue }
        if ($child -isnot [Xml.XmlElement]) { continue }
        switch ($child.LocalName) {
            { $_ -in 'see', 'seealso' } {
                if ($child.HasAttribute('cref')) {
                    # T:NvRedirect.Core.Model.AgentLink -> AgentLink; M:X.Y.Z(System.String) -> Z
                    $name = ($child.GetAttribute('cref') -replace '^\w:', '' -replace '\(.*$', '') -split '\.' | Select-Object -Last 1
                    [void]$sb.Append($(if ($child.InnerText) { $child.InnerText } else { $name }))
                }
                elseif ($child.HasAttribute('langword')) { [void]$sb.Append($child.GetAttribute('langword')) }
                elseif ($child.HasAttribute('href')) { [void]$sb.Append($(if ($child.InnerText) { $child.InnerText } else { $child.GetAttribute('href') })) }
                break
            }
            { $_ -in 'paramref', 'typeparamref' } { [void]$sb.Append($child.GetAttribute('name')); break }
            'c' { [void]$sb.Append('`' + $child.InnerText + '`'); break }
            default { [void]$sb.Append((ConvertTo-DocText $child)) }
        }
    }
    ($sb.ToString() -replace '\s+', ' ').Trim()
}

# Code keeps its lines; the indentation the compiler adds to every line is removed.
function ConvertTo-CodeText([string]$Text) {
    $lines = [Collections.Generic.List[string]]($Text -replace "`r", '' -split "`n")
    while ($lines.Count -and -not $lines[0].Trim()) { $lines.RemoveAt(0) }
    while ($lines.Count -and -not $lines[$lines.Count - 1].Trim()) { $lines.RemoveAt($lines.Count - 1) }
    $indent = ($lines | Where-Object { $_.Trim() } | ForEach-Object { $_.Length - $_.TrimStart().Length } | Measure-Object -Minimum).Minimum
    ($lines | ForEach-Object { if ($_.Length -ge $indent) { $_.Substring($indent).TrimEnd() } else { $_.Trim() } }) -join "`n"
}

# Paragraphs of a <summary>: typed <para type="..."> ones, or for $Type 'untyped', the paras without a type plus any
# loose text (a plain <summary>text</summary> is one untyped paragraph).
function Get-DocParagraphs($Summary, [string]$Type) {
    if (-not $Summary) { return @() }
    $result = [Collections.Generic.List[string]]::new()
    $loose = [Text.StringBuilder]::new()
    foreach ($child in $Summary.ChildNodes) {
        if ($child -is [Xml.XmlElement] -and $child.LocalName -eq 'para') {
            $paraType = $child.GetAttribute('type')
            if (($Type -eq 'untyped' -and -not $paraType) -or $paraType -eq $Type) {
                $text = ConvertTo-DocText $child
                if ($text) { $result.Add($text) }
            }
        }
        elseif ($Type -eq 'untyped') {
            $wrapper = $Summary.OwnerDocument.CreateElement('x')
            [void]$wrapper.AppendChild($child.CloneNode($true))
            [void]$loose.Append(' ' + (ConvertTo-DocText $wrapper))
        }
    }
    $looseText = ($loose.ToString() -replace '\s+', ' ').Trim()
    if ($looseText) { $result.Insert(0, $looseText) }
    $result.ToArray()
}

function Read-DocComments([string]$XmlPath) {
    $map = @{}
    if (-not (Test-Path $XmlPath)) {
        Write-Warning "help: no XML documentation at $XmlPath (GenerateDocumentationFile); help will have no text."
        return $map
    }
    foreach ($member in ([xml](Get-Content $XmlPath -Raw)).doc.members.member) { $map[$member.name] = $member }
    $map
}

# The doc comment of a property, looked up on the class that declares it, then on its base classes.
function Get-PropertyDoc([type]$Type, [string]$Name) {
    for ($t = $Type; $t; $t = $t.BaseType) {
        $property = $t.GetProperty($Name, [Reflection.BindingFlags]'Public, Instance, DeclaredOnly')
        if (-not $property) { continue }
        $member = $script:Docs[(Get-DocId 'P' $t $Name)]
        if ($member -and $member.SelectSingleNode('summary')) { return $member }
    }
    $null
}

# ---------------------------------------------------------------------------------------------------------------
# The help model: one object per cmdlet, rendered below as MAML and as Markdown.

$script:ShouldProcessParameters = [ordered]@{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

function Get-ShortTypeName([type]$Type) {
    if ($Type.IsArray) { return (Get-ShortTypeName $Type.GetElementType()) + '[]' }
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { return Get-ShortTypeName $inner }
    $Type.Name
}

function Get-FullTypeName([type]$Type) {
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { return Get-FullTypeName $inner }
    $Type.FullName
}

function Format-PipelineInput([bool]$ByValue, [bool]$ByPropertyName) {
    $kinds = @(if ($ByValue) { 'ByValue' }; if ($ByPropertyName) { 'ByPropertyName' })
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

function Format-DefaultValue($Value) {
    if ($null -eq $Value) { return $null }
    if ($Value -is [Management.Automation.SwitchParameter]) { return $(if ($Value.IsPresent) { 'True' }) }
    if ($Value -is [string]) { return $(if ($Value) { $Value }) }
    if ($Value -is [Array]) { return $(if ($Value.Length) { $Value -join ', ' }) }
    "$Value"
}

# Parameters of one parameter set (common parameters left out, WhatIf/Confirm kept) in the order PowerShell's own
# syntax uses: positional ones by position, then mandatory named ones, then the rest as declared.
function Get-SetParameters($ParameterSet) {
    $params = @($ParameterSet.Parameters | Where-Object { $_.Name -notin [Management.Automation.Cmdlet]::CommonParameters })
    $declared = @{}; for ($i = 0; $i -lt $params.Count; $i++) { $declared[$params[$i].Name] = $i }
    $params | Sort-Object -Stable `
        @{ Expression = { if ($_.Name -in $script:ShouldProcessParameters.Keys) { 3 } elseif ($_.Position -ge 0) { 0 } elseif ($_.IsMandatory) { 1 } else { 2 } } },
        @{ Expression = { if ($_.Position -ge 0) { $_.Position } else { $declared[$_.Name] } } }
}

function Format-SyntaxText([string]$CommandName, $SetParameters) {
    $parts = foreach ($p in $SetParameters) {
        $validValues = @($p.Attributes | Where-Object { $_ -is [Management.Automation.ValidateSetAttribute] } | ForEach-Object ValidValues)
        $value = if ($p.ParameterType -eq [Management.Automation.SwitchParameter]) { $null }
        elseif ($validValues) { '{' + ($validValues -join ' | ') + '}' }
        else { '<' + (Get-ShortTypeName $p.ParameterType) + '>' }
        $name = if ($p.Position -ge 0) { "[-$($p.Name)]" } else { "-$($p.Name)" }
        $text = if ($value) { "$name $value" } else { $name }
        if ($p.IsMandatory) { $text } else { "[$text]" }
    }
    (@($CommandName) + @($parts) + '[<CommonParameters>]') -join ' '
}

# Per parameter set values, collapsed to one value when all sets agree ("Yes", or "Yes (ByName); No (ByObject)").
function Join-PerSet($Values) {
    $distinct = @($Values | ForEach-Object Value | Select-Object -Unique)
    if ($distinct.Count -le 1) { return $distinct[0] }
    ($Values | ForEach-Object { "$($_.Value) ($($_.Set))" }) -join '; '
}

function Get-ParameterHelp([Management.Automation.CmdletInfo]$Command, [string]$Name, $Instance) {
    $metadata = $Command.Parameters[$Name]
    $isShouldProcess = $Name -in $script:ShouldProcessParameters.Keys
    $description = if ($isShouldProcess) { @($script:ShouldProcessParameters[$Name]) } else {
        $doc = Get-PropertyDoc $Command.ImplementingType $Name
        $summary = if ($doc) { $doc.SelectSingleNode('summary') }
        $typed = @(Get-DocParagraphs $summary 'description')
        if ($typed) { $typed } else { @(Get-DocParagraphs $summary 'untyped') }
    }
    if (-not $description) { Write-Warning "help: $($Command.Name) -$Name has no description (a <summary> on the property)." }

    $sets = foreach ($entry in $metadata.ParameterSets.GetEnumerator()) {
        [pscustomobject]@{
            Set = $(if ($entry.Key -eq '__AllParameterSets') { 'all sets' } else { $entry.Key })
            IsMandatory = $entry.Value.IsMandatory; Position = $entry.Value.Position
            ByValue = $entry.Value.ValueFromPipeline; ByPropertyName = $entry.Value.ValueFromPipelineByPropertyName
        }
    }
    $attributes = $metadata.Attributes
    $range = $attributes | Where-Object { $_ -is [Management.Automation.ValidateRangeAttribute] } | Select-Object -First 1
    $default = $null
    if ($Instance -and -not $isShouldProcess -and -not @($sets | Where-Object IsMandatory).Count) {
        $property = $Command.ImplementingType.GetProperty($Name)
        # a default computed from the machine (e.g. the running daemon's socket) is described by [PSDefaultValue(Help=...)]
        # instead of evaluated, so the generated help does not depend on what runs while it is built
        $described = if ($property) { [Attribute]::GetCustomAttribute($property, [Management.Automation.PSDefaultValueAttribute]) }
        if ($described) { $default = $(if ($described.Help) { $described.Help } else { Format-DefaultValue $described.Value }) }
        elseif ($property -and $property.CanRead) { $default = Format-DefaultValue $property.GetValue($Instance) }
    }
    [pscustomobject]@{
        Name           = $Name
        Type           = Get-ShortTypeName $metadata.ParameterType
        TypeFullName   = Get-FullTypeName $metadata.ParameterType
        IsSwitch       = $metadata.SwitchParameter
        IsArray        = $metadata.ParameterType.IsArray
        Description    = @($description)
        Required       = @($sets | Where-Object IsMandatory).Count -eq @($sets).Count
        RequiredText   = Join-PerSet @($sets | ForEach-Object { @{ Set = $_.Set; Value = $(if ($_.IsMandatory) { 'Yes' } else { 'No' }) } })
        Position       = ($sets | Where-Object Position -ge 0 | Select-Object -First 1 | ForEach-Object Position)
        PositionText   = Join-PerSet @($sets | ForEach-Object { @{ Set = $_.Set; Value = $(if ($_.Position -ge 0) { "$($_.Position)" } else { 'Named' }) } })
        ByValue        = [bool]@($sets | Where-Object ByValue).Count
        ByPropertyName = [bool]@($sets | Where-Object ByPropertyName).Count
        Aliases        = @($metadata.Aliases)
        Globbing       = [bool]@($attributes | Where-Object { $_ -is [Management.Automation.SupportsWildcardsAttribute] }).Count
        ValidValues    = @($attributes | Where-Object { $_ -is [Management.Automation.ValidateSetAttribute] } | ForEach-Object ValidValues)
        Range          = $(if ($range) { "$($range.MinRange)-$($range.MaxRange)" })
        Default        = $default
        Sets           = @($sets.Set)
    }
}

# A property-to-parameter binding a reader would expect: the type is what the parameter names (an AgentNamespace's
# Namespace to -Namespace, an AgentLink's Name to -LinkName), as opposed to one that only shares a property name.
function Test-NaturalBinding([type]$Type, [string]$Parameter) {
    $stem = $Parameter -replace 'Name$', ''
    $Type.Name.EndsWith($Parameter) -or ($stem -and $Type.Name.EndsWith($stem))
}

# What binds from the pipeline: by-value parameter types, and the module's own output types whose properties bind by
# property name. A type is listed for a parameter set when its properties bind every mandatory pipeline parameter
# and it is either this cmdlet's noun (Get-AgentLink | Remove-AgentLink) or the object those parameters name
# (Get-AgentNamespace | Get-AgentLink); types that merely happen to have a Name property are left out.
function Get-InputHelp([Management.Automation.CmdletInfo]$Command, $ModuleOutputs) {
    $inputs = [Collections.Generic.List[object]]::new()
    $byValue = $Command.Parameters.Values | Where-Object { $_.ParameterSets.Values | Where-Object ValueFromPipeline }
    foreach ($group in $byValue | Group-Object { Get-FullTypeName $_.ParameterType }) {
        $inputs.Add([pscustomobject]@{ Type = $group.Name; Description = "Binds to $(($group.Group | ForEach-Object { "-$($_.Name)" }) -join ', ') by value." })
    }
    foreach ($output in $ModuleOutputs) {
        $properties = @($output.Type.GetProperties().Name)
        $sameNoun = $output.Type.Name -eq $Command.Noun
        $bestBinding = $null
        foreach ($set in $Command.ParameterSets) {
            $binding = [ordered]@{}
            $mandatoryNatural = $true; $anyNatural = $false
            foreach ($p in $set.Parameters | Where-Object { $_.ValueFromPipeline -or $_.ValueFromPipelineByPropertyName }) {
                $property = if ($p.ValueFromPipelineByPropertyName) { @($p.Name) + @($p.Aliases) | Where-Object { $_ -in $properties } | Select-Object -First 1 }
                $natural = Test-NaturalBinding $output.Type $p.Name
                if ($property) { $binding[$property] = $p.Name; if ($natural) { $anyNatural = $true } }
                if ($p.IsMandatory -and -not ($property -or ($p.ValueFromPipeline -and $p.ParameterType.IsAssignableFrom($output.Type)))) { $binding = $null; break }
                if ($p.IsMandatory -and -not $natural) { $mandatoryNatural = $false }
            }
            if (-not $binding -or -not $binding.Count) { continue }
            if (-not ($sameNoun -or ($anyNatural -and $mandatoryNatural))) { continue }
            if (-not $bestBinding -or $binding.Count -gt $bestBinding.Count) { $bestBinding = $binding }
        }
        if (-not $bestBinding) { continue }
        $pairs = ($bestBinding.GetEnumerator() | ForEach-Object { "$($_.Key) to -$($_.Value)" }) -join ', '
        # name the Get- cmdlets that return the type when there are some: that is where users get them
        $producers = @($output.Producers | Where-Object { $_ -like 'Get-*' })
        if (-not $producers) { $producers = $output.Producers }
        $inputs.Add([pscustomobject]@{
                Type        = $output.Type.FullName
                Description = "Objects from $($producers -join ', ') bind by property name: $pairs."
            })
    }
    if (-not $inputs.Count) {
        $inputs.Add([pscustomobject]@{ Type = 'None'; Description = 'This cmdlet takes no pipeline input.' })
    }
    $inputs.ToArray()
}

function Get-OutputHelp([Management.Automation.CmdletInfo]$Command) {
    $passThru = $Command.Parameters.ContainsKey('PassThru')
    $outputs = foreach ($type in $Command.OutputType.Type | Where-Object { $_ -and $_ -ne [void] } | Select-Object -Unique) {
        $typeDoc = $script:Docs[(Get-DocId 'T' $type)]
        $text = @(if ($typeDoc) { Get-DocParagraphs $typeDoc.SelectSingleNode('summary') 'untyped' }) -join ' '
        if ($passThru) { $text = "With -PassThru. $text".Trim() }
        [pscustomobject]@{ Type = $type.FullName; Description = $text }
    }
    if (-not $outputs) { $outputs = [pscustomobject]@{ Type = 'None'; Description = 'This cmdlet returns no output.' } }
    @($outputs)
}

function Get-CommandHelp([Management.Automation.CmdletInfo]$Command, $ModuleOutputs, $AllCommands) {
    $type = $Command.ImplementingType
    $doc = $script:Docs[(Get-DocId 'T' $type)]
    $summary = if ($doc) { $doc.SelectSingleNode('summary') }
    $synopsis = @(Get-DocParagraphs $summary 'synopsis')
    $description = @(Get-DocParagraphs $summary 'description')
    if ($synopsis) { $description += @(Get-DocParagraphs $summary 'untyped') } else { $synopsis = @(Get-DocParagraphs $summary 'untyped') }
    $notes = @(if ($doc -and $doc.SelectSingleNode('remarks')) { Get-DocParagraphs $doc.SelectSingleNode('remarks') 'untyped' })

    $examples = @(foreach ($example in @(if ($doc) { $doc.SelectNodes('example') })) {
            $code = ($example.SelectNodes('code') | ForEach-Object { ConvertTo-CodeText $_.InnerText }) -join "`n"
            $remarksNode = $example.CloneNode($true)
            foreach ($c in @($remarksNode.SelectNodes('code'))) { [void]$remarksNode.RemoveChild($c) }
            [pscustomobject]@{ Code = $code; Remarks = @(Get-DocParagraphs $remarksNode 'untyped') }
        })

    $name = $Command.Name
    if (-not $synopsis) { Write-Warning "help: $name has no synopsis (<para type=""synopsis""> in the class <summary>)." }
    if (-not $description) { Write-Warning "help: $name has no description (<para type=""description""> in the class <summary>)." }
    if (-not $examples) { Write-Warning "help: $name has no example (<example><code>..</code><para>..</para></example>)." }
    foreach ($e in $examples | Where-Object { -not $_.Remarks }) { Write-Warning "help: an example of $name does not say what it does: $($e.Code)" }

    $instance = try { [Activator]::CreateInstance($type) } catch { $null }   # for default values only
    $syntax = foreach ($set in $Command.ParameterSets | Sort-Object { -not $_.IsDefault }) {
        $setParameters = @(Get-SetParameters $set)
        [pscustomobject]@{
            Name       = $set.Name
            Parameters = $setParameters
            Text       = Format-SyntaxText $name $setParameters
        }
    }
    # Parameters in the order of the first syntax, then those only in other sets.
    $parameterNames = @($syntax | ForEach-Object { $_.Parameters.Name } | Select-Object -Unique)
    $parameters = foreach ($p in $parameterNames) { Get-ParameterHelp $Command $p $instance }

    [pscustomobject]@{
        Name        = $name
        Verb        = $Command.Verb
        Noun        = $Command.Noun
        Synopsis    = ($synopsis -join ' ')
        Description = $description
        Notes       = $notes
        Syntax      = @($syntax)
        Parameters  = @($parameters)
        Inputs      = @(Get-InputHelp $Command $ModuleOutputs)
        Outputs     = @(Get-OutputHelp $Command)
        Examples    = $examples
        Related     = @($AllCommands | Where-Object { $_.Noun -eq $Command.Noun -and $_.Name -ne $name } | ForEach-Object Name)
    }
}

# ---------------------------------------------------------------------------------------------------------------
# MAML (the schema platyPS and the PowerShell docs use)

$script:Ns = @{
    msh     = 'http://msh'
    maml    = 'http://schemas.microsoft.com/maml/2004/10'
    command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    dev     = 'http://schemas.microsoft.com/maml/dev/2004/10'
}

function Write-Element([Xml.XmlWriter]$W, [string]$Prefix, [string]$Name, [string]$Text) {
    $W.WriteElementString($Prefix, $Name, $script:Ns[$Prefix], $Text)
}

function Write-Paragraphs([Xml.XmlWriter]$W, [string]$Prefix, [string]$Name, [string[]]$Paragraphs) {
    $W.WriteStartElement($Prefix, $Name, $script:Ns[$Prefix])
    $list = @($Paragraphs | Where-Object { $null -ne $_ })
    if (-not $list) { $list = @('') }   # the schema wants at least one paragraph
    foreach ($p in $list) { Write-Element $W 'maml' 'para' $p }
    $W.WriteEndElement()
}

function Write-TypeElement([Xml.XmlWriter]$W, [string]$TypeName) {
    $W.WriteStartElement('dev', 'type', $script:Ns.dev)
    Write-Element $W 'maml' 'name' $TypeName
    Write-Element $W 'maml' 'uri' ''
    $W.WriteEndElement()
}

# <command:inputTypes> or <command:returnValues>: one type with a description per item.
function Write-TypeList([Xml.XmlWriter]$W, [string]$ListName, [string]$ItemName, $Items) {
    $W.WriteStartElement('command', $ListName, $script:Ns.command)
    foreach ($item in $Items) {
        $W.WriteStartElement('command', $ItemName, $script:Ns.command)
        Write-TypeElement $W $item.Type
        Write-Paragraphs $W 'maml' 'description' @($item.Description)
        $W.WriteEndElement()
    }
    $W.WriteEndElement()
}

# One <command:parameter>; $SetParameter (a CommandParameterInfo) gives the per-set required/position in a syntax item.
function Write-MamlParameter([Xml.XmlWriter]$W, $Parameter, $SetParameter, [switch]$InSyntax) {
    $required = if ($SetParameter) { $SetParameter.IsMandatory } else { $Parameter.Required }
    $position = if ($SetParameter) { $(if ($SetParameter.Position -ge 0) { "$($SetParameter.Position)" } else { 'named' }) }
    elseif ($null -ne $Parameter.Position) { "$($Parameter.Position)" } else { 'named' }
    $W.WriteStartElement('command', 'parameter', $script:Ns.command)
    $W.WriteAttributeString('required', "$required".ToLowerInvariant())
    $W.WriteAttributeString('variableLength', "$($Parameter.IsArray)".ToLowerInvariant())
    $W.WriteAttributeString('globbing', "$($Parameter.Globbing)".ToLowerInvariant())
    $W.WriteAttributeString('pipelineInput', (Format-PipelineInput $Parameter.ByValue $Parameter.ByPropertyName))
    $W.WriteAttributeString('position', $position)
    $W.WriteAttributeString('aliases', $(if ($Parameter.Aliases) { $Parameter.Aliases -join ', ' } else { 'none' }))
    Write-Element $W 'maml' 'name' $Parameter.Name
    Write-Paragraphs $W 'maml' 'description' $Parameter.Description
    if ($Parameter.ValidValues) {
        $W.WriteStartElement('command', 'parameterValueGroup', $script:Ns.command)
        foreach ($v in $Parameter.ValidValues) {
            $W.WriteStartElement('command', 'parameterValue', $script:Ns.command)
            $W.WriteAttributeString('required', 'false'); $W.WriteAttributeString('command', 'variableLength', $script:Ns.command, 'false')
            $W.WriteString($v); $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }
    # a switch shows as [-Up] in a syntax, so it has no value there
    if (-not ($InSyntax -and $Parameter.IsSwitch)) {
        $W.WriteStartElement('command', 'parameterValue', $script:Ns.command)
        $W.WriteAttributeString('required', "$(-not $Parameter.IsSwitch)".ToLowerInvariant())
        $W.WriteAttributeString('variableLength', "$($Parameter.IsArray)".ToLowerInvariant())
        $W.WriteString($Parameter.Type); $W.WriteEndElement()
    }
    Write-TypeElement $W $Parameter.TypeFullName
    Write-Element $W 'dev' 'defaultValue' $(if ($null -ne $Parameter.Default) { $Parameter.Default } elseif ($Parameter.IsSwitch) { 'False' } else { 'None' })
    $W.WriteEndElement()
}

function Write-Maml([string]$Path, $Commands) {
    New-Item -ItemType Directory -Force (Split-Path $Path) | Out-Null
    $settings = [Xml.XmlWriterSettings]@{ Indent = $true; IndentChars = '  '; NewLineChars = "`n"; Encoding = [Text.UTF8Encoding]::new($false) }
    $w = [Xml.XmlWriter]::Create($Path, $settings)
    try {
        $w.WriteStartDocument()
        $w.WriteStartElement('helpItems', $script:Ns.msh)
        $w.WriteAttributeString('schema', 'maml')
        foreach ($c in $Commands) {
            $w.WriteStartElement('command', 'command', $script:Ns.command)
            foreach ($prefix in 'maml', 'command', 'dev') { $w.WriteAttributeString('xmlns', $prefix, $null, $script:Ns[$prefix]) }

            $w.WriteStartElement('command', 'details', $script:Ns.command)
            Write-Element $w 'command' 'name' $c.Name
            Write-Element $w 'command' 'verb' $c.Verb
            Write-Element $w 'command' 'noun' $c.Noun
            Write-Paragraphs $w 'maml' 'description' @($c.Synopsis)
            $w.WriteEndElement()

            Write-Paragraphs $w 'maml' 'description' $c.Description

            $w.WriteStartElement('command', 'syntax', $script:Ns.command)
            foreach ($s in $c.Syntax) {
                $w.WriteStartElement('command', 'syntaxItem', $script:Ns.command)
                Write-Element $w 'maml' 'name' $c.Name
                foreach ($sp in $s.Parameters) {
                    Write-MamlParameter $w ($c.Parameters | Where-Object Name -eq $sp.Name) $sp -InSyntax
                }
                $w.WriteEndElement()
            }
            $w.WriteEndElement()

            $w.WriteStartElement('command', 'parameters', $script:Ns.command)
            foreach ($p in $c.Parameters) { Write-MamlParameter $w $p $null }
            $w.WriteEndElement()

            Write-TypeList $w 'inputTypes' 'inputType' $c.Inputs
            Write-TypeList $w 'returnValues' 'returnValue' $c.Outputs

            if ($c.Notes) {
                $w.WriteStartElement('maml', 'alertSet', $script:Ns.maml)
                Write-Paragraphs $w 'maml' 'alert' $c.Notes
                $w.WriteEndElement()
            }

            $w.WriteStartElement('command', 'examples', $script:Ns.command)
            $n = 0
            foreach ($e in $c.Examples) {
                $n++
                $w.WriteStartElement('command', 'example', $script:Ns.command)
                Write-Element $w 'maml' 'title' "-------------------------- Example $n --------------------------"
                Write-Element $w 'dev' 'code' $e.Code
                Write-Paragraphs $w 'dev' 'remarks' (@($e.Remarks) + '')   # the empty paragraph spaces the examples in Get-Help
                $w.WriteEndElement()
            }
            $w.WriteEndElement()

            $w.WriteStartElement('command', 'relatedLinks', $script:Ns.command)
            foreach ($r in $c.Related) {
                $w.WriteStartElement('maml', 'navigationLink', $script:Ns.maml)
                Write-Element $w 'maml' 'linkText' $r
                Write-Element $w 'maml' 'uri' ''
                $w.WriteEndElement()
            }
            $w.WriteEndElement()

            $w.WriteEndElement()   # command:command
        }
        $w.WriteEndElement()
        $w.WriteEndDocument()
    }
    finally { $w.Dispose() }
}

# ---------------------------------------------------------------------------------------------------------------
# Markdown

# Prose for Markdown: < and > outside `code` spans become entities (they would start HTML tags); in a table cell
# every | is escaped too (GitHub needs that even inside code spans).
function Format-Text([string]$Text) {
    (($Text -split '(`[^`]*`)') | ForEach-Object { if ($_ -like '`*`') { $_ } else { $_ -replace '<', '&lt;' -replace '>', '&gt;' } }) -join ''
}
function Format-Cell([string]$Text) { (Format-Text $Text).Replace('|', '\|').Trim() }
function Get-Anchor([string]$Heading) { '#' + ($Heading.ToLowerInvariant() -replace '[^a-z0-9 _-]', '' -replace ' ', '-') }

function Write-Markdown([string]$Path, [string]$ModuleName, [string]$ModuleDescription, $Commands) {
    $md = [Collections.Generic.List[string]]::new()
    $md.Add("# $ModuleName cmdlet reference")
    $md.Add('')
    $md.Add('<!-- Generated by src/help/New-MamlHelp.ps1 (build.ps1 Build) from the cmdlets and their C# doc comments: edit those, not this file. -->')
    $md.Add('')
    if ($ModuleDescription) { $md.Add($ModuleDescription); $md.Add('') }
    $md.Add("The same text is what ``Get-Help <cmdlet> -Full`` shows once the module is built. Every cmdlet also takes the common parameters (-Verbose, -ErrorAction, ...; see about_CommonParameters).")
    $md.Add('')
    $md.Add('| Cmdlet | Synopsis |')
    $md.Add('|---|---|')
    foreach ($c in $Commands) { $md.Add("| [$($c.Name)]($(Get-Anchor $c.Name)) | $(Format-Cell $c.Synopsis) |") }

    foreach ($c in $Commands) {
        $md.Add(''); $md.Add("## $($c.Name)"); $md.Add('')
        $md.Add((Format-Text $c.Synopsis))
        $md.Add(''); $md.Add('### Syntax'); $md.Add('')
        $md.Add('```powershell')
        $md.Add((($c.Syntax | ForEach-Object Text) -join "`n`n"))
        $md.Add('```')
        if ($c.Syntax.Count -gt 1) {
            $md.Add('')
            $md.Add('Parameter sets, in order: ' + (($c.Syntax | ForEach-Object { "$($_.Name)$(if ($_.Name -eq $c.Syntax[0].Name) { ' (default)' })" }) -join ', ') + '.')
        }
        if ($c.Description) { $md.Add(''); $md.Add('### Description'); $md.Add(''); $md.Add((($c.Description | ForEach-Object { Format-Text $_ }) -join "`n`n")) }

        $md.Add(''); $md.Add('### Parameters'); $md.Add('')
        $md.Add('| Parameter | Type | Required | Position | Pipeline input | Description |')
        $md.Add('|---|---|---|---|---|---|')
        foreach ($p in $c.Parameters) {
            $facts = @(
                if ($p.ValidValues) { 'Values: ' + (($p.ValidValues | ForEach-Object { "``$_``" }) -join ', ') + '.' }
                if ($p.Range) { "Range: $($p.Range)." }
                if ($null -ne $p.Default) { "Default: ``$($p.Default)``." }
                if ($p.Aliases) { 'Aliases: ' + (($p.Aliases | ForEach-Object { "-$_" }) -join ', ') + '.' }
                if ($p.Globbing) { 'Wildcards allowed.' }
            )
            $pipeline = @(if ($p.ByValue) { 'ByValue' }; if ($p.ByPropertyName) { 'ByPropertyName' }) -join ', '
            $cells = @("``-$($p.Name)``", "``$($p.Type)``", $p.RequiredText, $p.PositionText, $(if ($pipeline) { $pipeline } else { 'No' }),
                (Format-Cell ((@($p.Description) + $facts) -join ' ')))
            $md.Add('| ' + ($cells -join ' | ') + ' |')
        }

        $md.Add(''); $md.Add('### Inputs'); $md.Add('')
        foreach ($i in $c.Inputs) { $md.Add("- ``$($i.Type)``: $(Format-Text $i.Description)") }
        $md.Add(''); $md.Add('### Outputs'); $md.Add('')
        foreach ($o in $c.Outputs) { $md.Add("- ``$($o.Type)``$(if ($o.Description) { ": $(Format-Text $o.Description)" })") }
        if ($c.Notes) { $md.Add(''); $md.Add('### Notes'); $md.Add(''); $md.Add((($c.Notes | ForEach-Object { Format-Text $_ }) -join "`n`n")) }

        if ($c.Examples) { $md.Add(''); $md.Add('### Examples') }
        $n = 0
        foreach ($e in $c.Examples) {
            $n++
            $md.Add(''); $md.Add("#### Example $n"); $md.Add('')
            $md.Add('```powershell'); $md.Add($e.Code); $md.Add('```')
            if ($e.Remarks) { $md.Add(''); $md.Add((($e.Remarks | ForEach-Object { Format-Text $_ }) -join "`n`n")) }
        }
        if ($c.Related) {
            $md.Add('')
            $md.Add('Related: ' + (($c.Related | ForEach-Object { "[$_]($(Get-Anchor $_))" }) -join ', ') + '.')
        }
    }
    New-Item -ItemType Directory -Force (Split-Path $Path) | Out-Null
    [IO.File]::WriteAllText($Path, ($md -join "`n") + "`n", [Text.UTF8Encoding]::new($false))
}

# ---------------------------------------------------------------------------------------------------------------
# Child process: load the module, build the model, write the files.

$module = Import-Module $ManifestPath -PassThru -Force
# the cmdlets' doc comments, and those of the core's types they return (NvRedirect.Core.xml beside it)
$script:Docs = @{}
foreach ($xml in @([IO.Path]::ChangeExtension($AssemblyPath, '.xml'), (Join-Path (Split-Path $AssemblyPath) 'NvRedirect.Core.xml'))) {
    $part = Read-DocComments $xml
    foreach ($k in $part.Keys) { $script:Docs[$k] = $part[$k] }
}

# The reference follows the manifest's CmdletsToExport order (grouped by noun there); anything else comes after.
$exportOrder = @((Import-PowerShellDataFile $ManifestPath).CmdletsToExport)
$cmdlets = @(Get-Command -Module $module.Name -CommandType Cmdlet |
        Sort-Object @{ Expression = { $i = [array]::IndexOf($exportOrder, $_.Name); if ($i -lt 0) { [int]::MaxValue } else { $i } } }, Name)
foreach ($c in $cmdlets) {
    if ($c.ImplementingType.Assembly.Location -ne $AssemblyPath) {
        throw "$ManifestPath loads $($c.Name) from $($c.ImplementingType.Assembly.Location), not from $AssemblyPath."
    }
}

# Each module type some cmdlet returns, with the cmdlets that return it (to describe pipeline input).
$moduleOutputs = @($cmdlets | ForEach-Object { $c = $_; $c.OutputType.Type | Where-Object { $_ -and ($_.Assembly -eq $c.ImplementingType.Assembly -or $_.Assembly.GetName().Name -eq 'NvRedirect.Core') } |
            ForEach-Object { [pscustomobject]@{ Type = $_; Producer = $c.Name } } } |
        Group-Object { $_.Type.FullName } | ForEach-Object { [pscustomobject]@{ Type = $_.Group[0].Type; Producers = @($_.Group.Producer) } })

$help = @(foreach ($c in $cmdlets) { Get-CommandHelp $c $moduleOutputs $cmdlets })
Write-Maml $OutputPath $help
Write-Host "help: $($help.Count) cmdlets -> $OutputPath"
if ($MarkdownPath) {
    Write-Markdown $MarkdownPath $module.Name $module.Description $help
    Write-Host "help: reference -> $MarkdownPath"
}
