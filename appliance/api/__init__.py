"""The app server: services exposed through one dispatcher over REST, XML-RPC and AMF."""
